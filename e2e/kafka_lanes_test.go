package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/laneprop"
	"github.com/graymesh/graymesh/lanequeue"
	"github.com/graymesh/graymesh/lanequeue/lanekafka"
)

// ledger records which consumer processed which record, by record key.
type ledger struct {
	mu sync.Mutex
	by map[string][]string
}

func (l *ledger) add(key, consumer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.by[key] = append(l.by[key], consumer)
}

// check fails unless every key was processed exactly once, by want(key).
func (l *ledger) check(t *testing.T, keys []string, want func(key string) string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if got := l.by[k]; len(got) != 1 || got[0] != want(k) {
			t.Errorf("record %s processed by %v, want once by %s", k, got, want(k))
		}
	}
}

// done reports how many of keys were processed.
func (l *ledger) done(keys []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range keys {
		if len(l.by[k]) > 0 {
			n++
		}
	}
	return n
}

// kafkaLanes is one topic with a stable and a gray consumer following
// lanes with a real graymesh's lane state.
type kafkaLanes struct {
	t        *testing.T
	broker   *kafkaBroker
	producer *kgo.Client
	// lanes is graymesh's GET /v1/lanes; each consumer follows it with
	// its own Follower, refreshed every second as in a service of its
	// own, so the consumers read a kill at different moments.
	lanes  string
	signer *lane.Signer
	ledger *ledger
	stable *lanekafka.Consumer
	// followers are the consumers' lane-state readers, in start order.
	followers []*lanequeue.Follower
}

const kafkaTopic = "orders"

// consumer starts a consumer of env; handle, when set, runs before the
// record is recorded (an error stops the consumer). Its cancel stops it
// and waits until it has left its group.
func (k *kafkaLanes) consumer(env string, handle func(ctx context.Context, r *kgo.Record) error) (*lanekafka.Consumer, func()) {
	k.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	follower, err := lanequeue.NewFollower(ctx, k.lanes)
	must(k.t, err)
	go follower.Run(ctx, lanequeue.DefaultRefresh)
	k.followers = append(k.followers, follower)
	c, err := lanekafka.New(lanekafka.Options{
		Brokers: []string{k.broker.Bootstrap}, Topic: kafkaTopic, Group: "notifier", Env: env, Envs: []string{"gray"},
		Follower: follower, LivenessEvery: 200 * time.Millisecond,
		Handle: func(ctx context.Context, r *kgo.Record, d lanequeue.Decision) error {
			if handle != nil {
				if err := handle(ctx, r); err != nil {
					return err
				}
			}
			// The handler's context carries the lane for its own calls.
			if laneprop.FromContext(ctx) != lanekafka.Lane(r) {
				k.t.Errorf("record %s: the handler's context lacks the lane", r.Key)
			}
			k.ledger.add(string(r.Key), env)
			return nil
		},
	})
	must(k.t, err)
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = c.Run(ctx)
		if runErr != nil && ctx.Err() == nil {
			k.t.Errorf("%s consumer stopped: %v", env, runErr)
		}
	}()
	stop := func() {
		cancel()
		<-done
		if runErr != nil && !errors.Is(runErr, context.Canceled) {
			k.t.Logf("%s consumer: %v", env, runErr)
		}
	}
	k.t.Cleanup(stop)
	return c, stop
}

// produce sends one record per key, with lane(key) as its lane ("" none),
// round robin over the two partitions, and returns when each was produced
// (its timestamp).
func (k *kafkaLanes) produce(keys []string, laneOf func(key string) string) map[string]time.Time {
	k.t.Helper()
	recs := make([]*kgo.Record, 0, len(keys))
	at := map[string]time.Time{}
	for i, key := range keys {
		// Kafka keeps timestamps in milliseconds: what consumers see.
		r := &kgo.Record{Topic: kafkaTopic, Partition: int32(i % 2), Key: []byte(key), Value: []byte("order " + key), Timestamp: time.Now().Truncate(time.Millisecond)}
		at[key] = r.Timestamp
		if l := laneOf(key); l != "" {
			lanekafka.Inject(laneprop.ContextWith(context.Background(), l), r)
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(k.t, k.producer.ProduceSync(ctx, recs...).FirstErr())
	return at
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// TestKafkaGrayConsumesWhatGrayProduces: records produced with a gray lane
// are processed by the gray consumer, the rest (no lane, a forged lane) by
// stable, each exactly once. The gray consumer stopped with records in
// hand: stable takes over those and every later gray record, and nothing
// is lost; started again, gray resumes after what stable took, and
// nothing is processed twice. Killed, gray's records go to stable at once.
//
//nolint:funlen // one topic, one story: the lanes through a broker
func TestKafkaGrayConsumesWhatGrayProduces(t *testing.T) {
	broker := startKafka(t)
	const laneKey = "e2e-kafka-lane-key-0123456789abcdef-0123"
	m := newMeshWith(t, meshIdentity+"\nlane: {key: "+laneKey+"}", "releases:\n  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}")
	broker.createTopic(t, kafkaTopic, 2)
	signer, err := lane.NewSigner([]byte(laneKey), 5*time.Minute)
	must(t, err)
	other, err := lane.NewSigner([]byte("not-the-mesh-key-0123456789abcdef-0123"), 5*time.Minute)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	follower, err := lanequeue.NewFollower(ctx, m.admin+"/v1/lanes")
	must(t, err)
	go follower.Run(ctx, 200*time.Millisecond)
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.Bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(t, err)
	t.Cleanup(producer.Close)
	k := &kafkaLanes{t: t, broker: broker, producer: producer, lanes: m.admin + "/v1/lanes", signer: signer, ledger: &ledger{by: map[string][]string{}}}
	grayLane := func(string) string { return signer.Sign("gray", "shop-v2", follower.ConfigVersion(), time.Now()) }
	// Keys name what a record is: g- gray lane, s- no lane, f- forged.
	laneOf := func(key string) string {
		switch {
		case strings.Contains(key, "g-"):
			return grayLane(key)
		case strings.Contains(key, "f-"):
			return other.Sign("gray", "shop-v2", "1", time.Now())
		}
		return ""
	}
	consumerOf := func(key string) string {
		if strings.Contains(key, "g-") && !strings.HasPrefix(key, "fallback") && !strings.HasPrefix(key, "killed") {
			return "gray"
		}
		return lanequeue.Stable
	}
	waitDone := func(what string, ks []string) {
		t.Helper()
		waitFor(t, what, 60*time.Second, func() error {
			if n := k.ledger.done(ks); n < len(ks) {
				return fmt.Errorf("%d of %d processed", n, len(ks))
			}
			return nil
		})
	}

	// Both consumers live: what gray produced, gray consumes.
	stable, _ := k.consumer(lanequeue.Stable, nil)
	k.stable = stable
	release := make(chan struct{})
	var held sync.Map
	_, stopGray := k.consumer("gray", func(ctx context.Context, r *kgo.Record) error {
		if !strings.HasPrefix(string(r.Key), "held") {
			return nil
		}
		// The gray consumer is stopped with these in hand: never
		// processed by it, never committed in its group.
		held.Store(string(r.Key), true)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return errors.New("stopped with the record in hand")
	})
	// Until stable has seen gray's group with a member, a gray record
	// may be processed by both (the handover lanekafka documents).
	grayLive := func() error {
		if live, _ := stable.Live("gray"); !live {
			return errors.New("stable has not seen a member in gray's group yet")
		}
		return nil
	}
	waitFor(t, "stable seeing the gray consumer", 30*time.Second, grayLive)
	first := slices.Concat(keys("both-g", 20), keys("both-s", 20), keys("both-f", 4))
	k.produce(first, laneOf)
	waitDone("the records of both consumers", first)
	explainMessage(t, m, grayLane(""), time.Now(), broker, "gray", "notifier.gray", wire.ReasonLane)

	// Gray stopped while holding records: stable takes them over, and
	// every gray record after.
	heldKeys := keys("held-g", 6)
	leftBefore := stable.Left.Load()
	k.produce(heldKeys, laneOf)
	waitFor(t, "the gray consumer holding a record, stable past them all", 30*time.Second, func() error {
		n := 0
		held.Range(func(any, any) bool { n++; return true })
		if n == 0 {
			return errors.New("none held yet")
		}
		// Stable left them to gray: it takes them over, not as fallback.
		if left := stable.Left.Load() - leftBefore; left < int64(len(heldKeys)) {
			return fmt.Errorf("stable left %d of %d", left, len(heldKeys))
		}
		return nil
	})
	stopGray()
	close(release)
	waitDone("the held records, taken over by stable", heldKeys)
	fallback := keys("fallback-g", 20)
	k.produce(fallback, laneOf)
	waitDone("gray's records while no gray consumer is live", fallback)
	explainMessage(t, m, grayLane(""), time.Now(), broker, lanequeue.Stable, "notifier", wire.ReasonLane)
	if stable.TakenOver.Load() == 0 {
		t.Errorf("stable took over none of the held records (fallback %d)", stable.Fallback.Load())
	}

	// Gray again: it resumes after what stable took for it.
	entered := make(chan struct{})
	gray2, stopGray2 := k.consumer("gray", func(ctx context.Context, r *kgo.Record) error {
		if strings.HasPrefix(string(r.Key), "inflight") {
			// Stopped while handling it: the record is handled all the
			// same (the handler returns nil).
			close(entered)
			<-ctx.Done()
		}
		return nil
	})
	waitFor(t, "stable seeing the gray consumer again", 30*time.Second, grayLive)
	again := keys("again-g", 20)
	k.produce(again, laneOf)
	waitDone("gray's records with gray back", again)

	// Stopped while it handles a record, gray commits that record as it
	// leaves: stable, taking over, does not handle it again.
	inflight := keys("inflight-g", 1)
	k.produce(inflight, laneOf)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the gray consumer never began the in-flight record")
	}
	stopGray2()
	waitFor(t, "stable seeing gray's group empty", 30*time.Second, func() error {
		if live, _ := stable.Live("gray"); live {
			return errors.New("gray's group still has a member")
		}
		return nil
	})
	k.consumer("gray", nil)
	waitFor(t, "stable seeing the third gray consumer", 30*time.Second, grayLive)

	// Killed under load: each consumer reads the kill at its own moment,
	// yet every record is processed once, by gray when produced before
	// the kill, by stable after.
	killedAt, before := k.killUnderLoad(m, "race-g", 240, 80, laneOf)
	explainMessage(t, m, grayLane(""), killedAt, broker, lanequeue.Stable, "notifier", wire.ReasonKilled)
	justBefore := killedAt.Add(-time.Millisecond)
	explainMessage(t, m, signer.Sign("gray", "shop-v2", follower.ConfigVersion(), justBefore), justBefore, broker, "gray", "notifier.gray", wire.ReasonLane)
	killed := keys("killed-g", 20)
	k.produce(killed, laneOf)
	waitDone("gray's records after the kill", killed)

	// With lane.message_kill_delay the kill takes effect for messages 2 s
	// later, and the consumers' state holds that long: they read graymesh
	// about once a second, and still agree on every record.
	m.adminPost(t, "/v1/releases/shop-v2/revive?reason=kafka+test")
	cfg, err := os.ReadFile(m.configPath)
	must(t, err)
	delayed := strings.Replace(string(cfg), "{key: "+laneKey+"}", "{key: "+laneKey+", message_kill_delay: 2s}", 1)
	if delayed == string(cfg) {
		t.Fatalf("no lane block to add message_kill_delay to in %s", cfg)
	}
	must(t, os.WriteFile(m.configPath, []byte(delayed), 0o600))
	waitFor(t, "graymesh answering a lane state that holds 2s ahead", 30*time.Second, func() error {
		resp, err := http.Get(k.lanes)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st admin.LaneState
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err
		}
		if ahead := time.Until(st.AsOf); ahead < time.Second {
			return fmt.Errorf("as_of %s ahead", ahead)
		}
		return nil
	})
	killedLater, beforeLater := k.killUnderLoad(m, "later-g", 600, 0, laneOf)

	k.ledger.check(t, slices.Concat(first, heldKeys, fallback, again, inflight, killed), func(key string) string {
		if strings.HasPrefix(key, "held") {
			return lanequeue.Stable
		}
		return consumerOf(key)
	})
	t.Logf("stable: processed %d (fallback %d, taken over %d), left %d; gray again: processed %d; racing records produced before the kill: %d of 240 (killed at %s), %d of 600 with the delay (in effect at %s)",
		stable.Processed.Load(), stable.Fallback.Load(), stable.TakenOver.Load(), stable.Left.Load(), gray2.Processed.Load(),
		before, killedAt.Format(time.StampMilli), beforeLater, killedLater.Format(time.StampMilli))
}

// killUnderLoad produces n gray records, two every 10 ms, killing the
// release before the killAt-th, then checks that each was processed once:
// by gray when produced before the kill took effect for messages (the
// lane state's killed_at), by stable after. It returns that instant and
// how many records came before it.
func (k *kafkaLanes) killUnderLoad(m *mesh, prefix string, n, killAt int, laneOf func(string) string) (killedAt time.Time, before int) {
	t := k.t
	t.Helper()
	racing, producedAt := keys(prefix, n), map[string]time.Time{}
	readsBefore, unfencedBefore, startedAt := k.reads(), k.unfenced(), time.Now()
	pace := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < len(racing); i += 2 {
		if i == killAt {
			m.adminPost(t, "/v1/releases/shop-v2/kill?reason=kafka+test")
		}
		maps.Copy(producedAt, k.produce(racing[i:i+2], laneOf))
		<-pace.C
	}
	pace.Stop()
	waitFor(t, "the records produced across the kill", 60*time.Second, func() error {
		if done := k.ledger.done(racing); done < n {
			return fmt.Errorf("%d of %d processed", done, n)
		}
		return nil
	})
	killedAt = killInstant(t, k.lanes, "shop-v2")
	for _, key := range racing {
		if producedAt[key].Before(killedAt) {
			before++
		}
	}
	k.ledger.check(t, racing, func(key string) string {
		if producedAt[key].Before(killedAt) {
			return "gray"
		}
		return lanequeue.Stable
	})
	t.Logf("%s: the consumers read graymesh's lane state %d times in the %s they took to produce and decide %d records (once a second each, and on demand for records newer than their state); %d decided unfenced",
		prefix, k.reads()-readsBefore, time.Since(startedAt).Round(time.Millisecond), n, k.unfenced()-unfencedBefore)
	if k.unfenced() != unfencedBefore {
		t.Errorf("%d records decided with a lane state older than they are", k.unfenced()-unfencedBefore)
	}
	if before == 0 || before == n {
		t.Errorf("%d of %d records produced before the kill took effect at %s: it did not fall among them", before, n, killedAt)
	}
	return killedAt, before
}

// reads and unfenced sum the consumers' lane-state reads and the records
// they decided with a state older than the record.
func (k *kafkaLanes) reads() (n int64) {
	for _, f := range k.followers {
		n += f.Refreshes.Load()
	}
	return n
}

func (k *kafkaLanes) unfenced() (n int64) {
	for _, f := range k.followers {
		n += f.Unfenced.Load()
	}
	return n
}

// explainMessage checks what `graymesh explain --message` says of a record
// carrying lane produced at at: the consumer that takes it (and its
// group, read from the broker) and the reason.
func explainMessage(t *testing.T, m *mesh, lane string, at time.Time, broker *kafkaBroker, env, group, reason string) {
	t.Helper()
	ex, err := m.explainInForce("--message", "--lane", lane, "--at", at.Format(time.RFC3339Nano), "--kafka", broker.Bootstrap, "--group", "notifier")
	must(t, err)
	d, _ := ex["decision"].(map[string]any)
	if ex["consumed_by"] != env || ex["consumer_group"] != group || d["reason"] != reason {
		t.Errorf("explain --message of a record produced at %s: %v, want consumed by %s (group %s), reason %s", at, ex, env, group, reason)
	}
}

// killInstant is when graymesh's lane state says release's latest kill
// took effect for messages.
func killInstant(t *testing.T, lanes, release string) time.Time {
	t.Helper()
	resp, err := http.Get(lanes)
	must(t, err)
	defer resp.Body.Close()
	var st admin.LaneState
	must(t, json.NewDecoder(resp.Body).Decode(&st))
	for _, k := range slices.Backward(st.Kills) { // the latest
		if k.Release == release {
			return k.KilledAt
		}
	}
	t.Fatalf("GET %s: no kill of %s in %+v", lanes, release, st.Kills)
	return time.Time{}
}

// startNotifiers starts a gray and a stable notifier (demo services
// consuming topic with lanekafka) and returns their base URLs by
// environment.
func (m *fourHop) startNotifiers(broker *kafkaBroker, topic string) map[string]string {
	m.t.Helper()
	notifiers := map[string]string{}
	for _, env := range []string{"gray", "stable"} {
		notifiers[env] = m.startNotifier(broker, topic, env, freePort(m.t))
	}
	return notifiers
}

// startNotifier starts env's notifier on port (m.services["notifier-env"])
// and returns its base URL once it answers.
func (m *fourHop) startNotifier(broker *kafkaBroker, topic, env string, port int) string {
	m.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	m.services["notifier-"+env] = start(m.t, m.dir, "notifier-"+env, filepath.Join(binDir, "demo-service"), "--service", "notifier", "--env", env, "--version", env,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--otlp", m.otlp,
		"--kafka", broker.Bootstrap, "--consume", topic, "--lanes", m.admin+"/v1/lanes")
	waitFor(m.t, "notifier-"+env, 20*time.Second, httpOK(url+"/healthz"))
	return url
}

// consumedBy is what a demo notifier's GET /consumed answers.
type consumedBy struct {
	Records []struct {
		Key, Lane, Reason string
	} `json:"records"`
	GrayLive bool `json:"gray_live"`
}

func getConsumed(url string) (consumedBy, error) {
	var c consumedBy
	resp, err := http.Get(url + "/consumed")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// TestMeshChainThroughKafkaStaysInItsLane: the four-hop mesh's orders
// publishes an event per request; a stable and a gray notifier consume
// them with lanekafka. alice's chains (gray) are consumed by the gray
// notifier, carol's (stable) by the stable one; then, through a ramp, the
// gray notifier stopped (stable takes gray's events) and started again
// (gray's again), and a kill (stable's): every event is consumed exactly
// once, by the notifier its chain's lane and the moment say, and in
// Jaeger the notifier's span is a hop of the chain's trace, with no leak
// across it.
//
//nolint:funlen // one mesh, one story: the lane through a broker under operations
func TestMeshChainThroughKafkaStaysInItsLane(t *testing.T) {
	broker := startKafka(t)
	broker.createTopic(t, "order-events", 2)
	m := newFourHop(t)
	for _, i := range []int{2, 3} { // orders, stable and gray: publish
		a := exampleApps[i]
		m.services[a.service+"-"+a.env].kill()
		m.startApp(a.service, a.env, a.version, a.port, a.calls, a.outbound, "--kafka", broker.Bootstrap, "--publish", "order-events")
	}
	notifiers := m.startNotifiers(broker, "order-events")
	grayLive := func(want bool) func() error {
		return func() error {
			c, err := getConsumed(notifiers["stable"])
			if err != nil {
				return err
			}
			if c.GrayLive != want {
				return fmt.Errorf("the stable notifier reads gray's group as live=%v", c.GrayLive)
			}
			return nil
		}
	}
	waitFor(t, "the stable notifier seeing the gray one", 30*time.Second, grayLive(true))

	// want is, per event (its chain's trace id), the notifier that must
	// consume it and the lane it must carry.
	type expect struct{ consumer, lane string }
	want := map[string]expect{}
	var ids []string
	send := func(who string, consumer func(ordersEnv string) string) {
		t.Helper()
		id := newTraceID()
		r, err := m.chain(id, bearer(m.token(who, time.Now().Add(time.Hour))))
		must(t, err)
		if len(r.Errors) > 0 || len(r.Calls) == 0 || len(r.Calls[0].Errors) > 0 {
			t.Fatalf("%s's chain: %+v", who, r)
		}
		orders := r.Calls[0].Env // the lane orders published under
		want[id], ids = expect{consumer(orders), orders}, append(ids, id)
	}
	ownLane := func(env string) string { return env }
	for i := range 16 {
		who := "alice" // whitelisted: gray
		if i%2 == 1 {
			who = "carol" // blacklisted: stable
		}
		send(who, ownLane)
	}

	// A ramp: users the percentage admits are gray, each event follows.
	m.adminPost(t, "/v1/releases/shop-v2/percent?value=80")
	for i := range 12 {
		send(fmt.Sprintf("user-%02d", i), ownLane)
	}
	// Gray's notifier stopped: its events go to stable, still in gray's
	// lane. What the stopped notifier consumed is read first, once every
	// event so far is consumed: it goes with the process.
	type got struct{ consumer, lane string }
	var firstGray consumedBy
	grayStopped := false
	collect := func() (map[string][]got, error) {
		seen := map[string][]got{}
		for _, r := range firstGray.Records {
			seen[r.Key] = append(seen[r.Key], got{"gray", r.Lane})
		}
		for env, url := range notifiers {
			if env == "gray" && grayStopped {
				continue
			}
			c, err := getConsumed(url)
			if err != nil {
				return nil, err
			}
			for _, r := range c.Records {
				seen[r.Key] = append(seen[r.Key], got{env, r.Lane})
			}
		}
		return seen, nil
	}
	allConsumed := func(what string) map[string][]got {
		t.Helper()
		var seen map[string][]got
		waitFor(t, what, 60*time.Second, func() (err error) {
			if seen, err = collect(); err != nil {
				return err
			}
			if n := len(seen); n < len(want) {
				return fmt.Errorf("%d of %d events consumed", n, len(want))
			}
			return nil
		})
		return seen
	}
	allConsumed("every event before the gray notifier stops")
	firstGray, err := getConsumed(notifiers["gray"])
	must(t, err)
	grayProc := m.services["notifier-gray"]
	must(t, grayProc.cmd.Process.Signal(syscall.SIGTERM))
	<-grayProc.done
	grayStopped = true
	waitFor(t, "the stable notifier seeing gray's group empty", 30*time.Second, grayLive(false))
	for range 6 {
		send("alice", func(string) string { return lanequeue.Stable })
	}
	// Started again once stable has taken those (a gray consumer that
	// joins while stable still takes gray's records may handle some of
	// them too: the handover lanekafka documents), gray's events are
	// gray's, none consumed twice.
	allConsumed("gray's events while the gray notifier is stopped")
	port := strings.TrimPrefix(notifiers["gray"], "http://127.0.0.1:")
	var grayPort int
	_, _ = fmt.Sscan(port, &grayPort)
	m.startNotifier(broker, "order-events", "gray", grayPort)
	grayStopped = false
	waitFor(t, "the stable notifier seeing the gray one again", 30*time.Second, grayLive(true))
	for range 6 {
		send("alice", ownLane)
	}
	// Killed: alice's chains are stable's, and so are their events.
	m.adminPost(t, "/v1/releases/shop-v2/kill?reason=kafka+mesh+test")
	for range 6 {
		send("alice", ownLane)
	}

	seen := allConsumed("every event consumed")
	byConsumer := map[string]int{}
	for id, w := range want {
		g := seen[id]
		if len(g) != 1 || g[0] != got(w) {
			t.Errorf("event of trace %s consumed as %+v, want once by %s in lane %s", id, g, w.consumer, w.lane)
		}
		byConsumer[w.consumer+" in lane "+w.lane]++
	}
	t.Logf("%d events: %v", len(want), byConsumer)
	if byConsumer["gray in lane gray"] < 8 || byConsumer["stable in lane gray"] != 6 || byConsumer["stable in lane stable"] < 14 {
		t.Errorf("the phases did not put events where they should: %v", byConsumer)
	}

	r, code := m.waitForTraces(ids)
	if code != 0 || r.Leaks != 0 {
		t.Fatalf("verify-traces exit %d, %d leaks", code, r.Leaks)
	}
	for _, tr := range r.Traces {
		w, ok := want[tr.TraceID]
		if !ok {
			continue
		}
		notifier := ""
		for _, h := range tr.Hops {
			if h.Service == "notifier" {
				notifier = h.Served
			}
		}
		if notifier != w.consumer {
			t.Errorf("trace %s: the notifier hop served %q, want %q (hops %+v)", tr.TraceID, notifier, w.consumer, tr.Hops)
		}
	}
}
