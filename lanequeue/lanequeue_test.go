package lanequeue

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/laneprop"
)

const meshKey = "lanequeue-test-mesh-key-0123456789abcdef"

// graymeshState serves a lane state as graymesh's GET /v1/lanes does;
// set changes what it answers next.
type graymeshState struct {
	mu  sync.Mutex
	doc map[string]any
}

func (g *graymeshState) set(doc map[string]any) { g.mu.Lock(); g.doc = doc; g.mu.Unlock() }

// ServeHTTP answers the state set; an as_of of "now" is the instant of
// the answer, as graymesh's is.
func (g *graymeshState) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	doc := g.doc
	if doc["as_of"] == "now" {
		doc = maps.Clone(doc)
		doc["as_of"] = time.Now()
	}
	_ = json.NewEncoder(w).Encode(doc)
}

func signer(t *testing.T, key string) *lane.Signer {
	t.Helper()
	s, err := lane.NewSigner([]byte(key), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFollowerDecidesAsASidecar: a consumer's decision from a message's
// lane is an inner hop's — the lane's environment; stable without a lane,
// with a forged or expired one, and for a killed release (in Kubernetes
// mode, only lanes issued up to the kill's version) — and a refresh
// brings a kill and a key rotation.
func TestFollowerDecidesAsASidecar(t *testing.T) {
	s, other := signer(t, meshKey), signer(t, "another-mesh-key-0123456789abcdef-01")
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{}})
	srv := httptest.NewServer(g)
	defer srv.Close()
	ctx := context.Background()
	f, err := NewFollower(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	gray := s.Sign("gray", "shop-v2", "7", now)
	tests := []struct {
		name, token, env, reason string
	}{
		{"gray lane", gray, "gray", wire.ReasonLane},
		{"no lane", "", Stable, wire.ReasonLaneMissing},
		{"forged", other.Sign("gray", "shop-v2", "7", now), Stable, wire.ReasonLaneRefused},
		{"garbage", "x.y.z", Stable, wire.ReasonLaneRefused},
	}
	for _, tt := range tests {
		if d := f.Decide(context.Background(), tt.token, now); d.Env != tt.env || d.Reason != tt.reason {
			t.Errorf("%s: %+v, want %s %s", tt.name, d, tt.env, tt.reason)
		}
	}
	if d := f.Decide(context.Background(), gray, now.Add(time.Hour)); d.Env != Stable || d.Reason != wire.ReasonLaneRefused {
		t.Errorf("expired: %+v", d)
	}
	if d := f.Decide(context.Background(), s.SignStressLane("gray", "shop-v2", "7", now), now); d.Env != "gray" || !d.Stress {
		t.Errorf("stress lane: %+v", d)
	}

	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"}})
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.Decide(context.Background(), gray, now); d.Env != Stable || d.Reason != wire.ReasonKilled || f.ConfigVersion() != "8" {
		t.Errorf("killed: %+v (version %s)", d, f.ConfigVersion())
	}
	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"}, "killed_through": "8"})
	must(t, f.Refresh(ctx))
	if d := f.Decide(context.Background(), s.Sign("gray", "shop-v2", "9", now), now); d.Env != "gray" {
		t.Errorf("a lane issued after the kill was lifted elsewhere: %+v", d)
	}
	if d := f.Decide(context.Background(), gray, now); d.Env != Stable {
		t.Errorf("a lane issued before the kill: %+v", d)
	}

	rotated, err := lane.NewSigner([]byte("rotated-mesh-key-0123456789abcdef-012"), time.Minute, []byte(meshKey))
	must(t, err)
	g.set(map[string]any{"config_version": "9", "keys": json.RawMessage(rotated.JWKS()), "killed": []string{}})
	must(t, f.Refresh(ctx))
	for _, tok := range []string{gray, rotated.Sign("gray", "shop-v2", "9", now)} {
		if d := f.Decide(context.Background(), tok, now); d.Env != "gray" {
			t.Errorf("after the rotation: %+v", d)
		}
	}

	g.set(map[string]any{"config_version": "10", "keys": json.RawMessage(`{"keys":[]}`)})
	if err := f.Refresh(ctx); err == nil {
		t.Error("a broken state was taken")
	}
	if f.ConfigVersion() != "9" {
		t.Errorf("a broken state replaced the one in force: %s", f.ConfigVersion())
	}
	if _, err := NewFollower(ctx, srv.URL); err == nil {
		t.Error("a consumer started on a broken lane state")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestProcesses: gray's messages go to gray's consumer while it is live
// and to stable's when none is; stable's only to stable's.
func TestProcesses(t *testing.T) {
	grayLive := func(live bool) func(string) bool { return func(env string) bool { return env == Stable || live } }
	gray, stable := Decision{Env: "gray"}, Decision{Env: Stable}
	for _, tt := range []struct {
		name     string
		consumer string
		d        Decision
		live     bool
		want     bool
	}{
		{"gray message, gray consumer", "gray", gray, true, true},
		{"gray message, stable consumer, gray live", Stable, gray, true, false},
		{"gray message, stable consumer, gray gone", Stable, gray, false, true},
		{"stable message, stable consumer", Stable, stable, true, true},
		{"stable message, gray consumer", "gray", stable, true, false},
		{"canary message, gray consumer", "gray", Decision{Env: "canary"}, true, false},
	} {
		if got := Processes(tt.consumer, tt.d, grayLive(tt.live)); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
		if tt.want != (ConsumerOf(tt.d, grayLive(tt.live)) == tt.consumer) {
			t.Errorf("%s: ConsumerOf says %s", tt.name, ConsumerOf(tt.d, grayLive(tt.live)))
		}
	}
}

type headerMap map[string]string

func (h headerMap) Set(k, v string) { h[k] = v }

// TestInject: the lane of the request's context goes into the message;
// none without one.
func TestInject(t *testing.T) {
	h := headerMap{}
	Inject(laneprop.ContextWith(context.Background(), "a.b.c"), h)
	if h[Header] != "a.b.c" {
		t.Fatalf("headers %v", h)
	}
	h = headerMap{}
	Inject(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("headers %v without a lane", h)
	}
}

// benchState is a lane state with one gray lane to decide.
func benchState(b *testing.B) (*state, string, time.Time) {
	s, err := lane.NewSigner([]byte(meshKey), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	st, err := parseState([]byte(`{"config_version":"7","killed":["other"],"keys":`+s.JWKS()+`}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	return st, s.Sign("gray", "shop-v2", "7", now), now
}

// BenchmarkFollowerDecide is the consumer filter's cost per message for a
// lane seen before, with a lane state as new as the message: the common
// case, one lane per environment, release and version per window.
func BenchmarkFollowerDecide(b *testing.B) {
	st, tok, now := benchState(b)
	st.asOf = now // as graymesh answers: the message is no newer than the state
	f := &Follower{}
	f.state.Store(st)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := f.Decide(ctx, tok, now); d.Env != "gray" {
			b.Fatal(d)
		}
	}
}

// BenchmarkFollowerVerifyUncached is what each message would cost without
// the cache: the lane's Ed25519 signature verified afresh.
func BenchmarkFollowerVerifyUncached(b *testing.B) {
	st, tok, now := benchState(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.keys.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCachedLaneExpires: a cached lane is not honoured past its expiry.
func TestCachedLaneExpires(t *testing.T) {
	s := signer(t, meshKey)
	st, err := parseState([]byte(`{"config_version":"7","killed":[],"keys":`+s.JWKS()+`}`), nil)
	must(t, err)
	now := time.Now()
	tok := s.Sign("gray", "shop-v2", "7", now)
	if d, _ := st.decide(tok, now); d.Env != "gray" {
		t.Fatal(d)
	}
	if d, _ := st.decide(tok, now.Add(time.Hour)); d.Env != Stable || d.Reason != wire.ReasonLaneRefused {
		t.Fatalf("a cached lane past its expiry: %+v", d)
	}
}

// TestSameKeysKeepTheirCache: a refresh that reads the same keys (graymesh
// answers a new as_of every time) keeps them parsed, with the lanes they
// verified; new keys start a new cache.
func TestSameKeysKeepTheirCache(t *testing.T) {
	s := signer(t, meshKey)
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{}, "kills": []any{}, "as_of": "now"})
	srv := httptest.NewServer(g)
	defer srv.Close()
	f, err := NewFollower(context.Background(), srv.URL)
	must(t, err)
	before := f.state.Load()
	must(t, f.Refresh(context.Background()))
	if after := f.state.Load(); after.verified != before.verified || after.keys != before.keys || f.Refreshes.Load() != 2 {
		t.Fatalf("the same keys were parsed again, or their cache dropped (refreshes %d)", f.Refreshes.Load())
	}
	rotated := signer(t, "rotated-mesh-key-0123456789abcdef-012")
	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(rotated.JWKS()), "killed": []string{}, "kills": []any{}, "as_of": "now"})
	must(t, f.Refresh(context.Background()))
	if after := f.state.Load(); after.verified == before.verified || f.ConfigVersion() != "8" {
		t.Fatalf("new keys kept the old cache (version %s)", f.ConfigVersion())
	}
}

// TestKillIsDecidedAtProduceTime: a message is decided by the kill in
// force when it was produced — before the kill, its lane's environment;
// while killed, stable; after a revive, its lane's again — so consumers
// that read the kill at different moments agree. A message newer than
// the state waits for a newer one, read on demand; a producer clock far
// ahead is decided with the state in force, and counted.
func TestKillIsDecidedAtProduceTime(t *testing.T) {
	s := signer(t, meshKey)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	killed, revived := t0.Add(10*time.Second), t0.Add(20*time.Second)
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{},
		"kills": []any{map[string]any{"release": "shop-v2", "killed_at": killed, "revived_at": revived}}, "as_of": t0.Add(30 * time.Second)})
	srv := httptest.NewServer(g)
	defer srv.Close()
	ctx := context.Background()
	f, err := NewFollower(ctx, srv.URL)
	must(t, err)
	tok := s.Sign("gray", "shop-v2", "7", t0)
	for _, tt := range []struct {
		name     string
		at       time.Time
		env, why string
	}{
		{"before the kill", killed.Add(-time.Millisecond), "gray", wire.ReasonLane},
		{"at the kill", killed, Stable, wire.ReasonKilled},
		{"while killed", revived.Add(-time.Millisecond), Stable, wire.ReasonKilled},
		{"after the revive", revived, "gray", wire.ReasonLane},
	} {
		if d := f.Decide(ctx, tok, tt.at); d.Env != tt.env || d.Reason != tt.why {
			t.Errorf("%s: %+v, want %s (%s)", tt.name, d, tt.env, tt.why)
		}
	}
	if f.Refreshes.Load() != 1 {
		t.Errorf("%d reads for messages the state is newer than, want 1", f.Refreshes.Load())
	}

	// Killed again after the state the follower holds: a message produced
	// since is decided only with a state that knows it.
	now := time.Now()
	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"},
		"kills": []any{map[string]any{"release": "shop-v2", "killed_at": now}}, "as_of": "now"})
	fresh := s.Sign("gray", "shop-v2", "7", now)
	if d := f.Decide(ctx, fresh, now); d.Env != Stable || d.Reason != wire.ReasonKilled || f.Refreshes.Load() != 2 {
		t.Errorf("a message newer than the state: %+v after %d reads, want killed after 2", d, f.Refreshes.Load())
	}
	if d := f.Decide(ctx, s.Sign("stable", "shop-v2", "7", now), now.Add(time.Second)); d.Env != Stable || f.Refreshes.Load() != 2 {
		t.Errorf("a stable lane waited for a newer state (%d reads): %+v", f.Refreshes.Load(), d)
	}
	ahead := now.Add(time.Hour)
	if d := f.Decide(ctx, s.Sign("gray", "shop-v2", "7", ahead), ahead); d.Reason != wire.ReasonKilled || f.Unfenced.Load() != 1 {
		t.Errorf("a producer clock an hour ahead: %+v, unfenced %d, want 1", d, f.Unfenced.Load())
	}
}

// TestUnreachableGraymeshDoesNotStallConsumers: when graymesh cannot be
// read, a message newer than the state waits at most the fence's bound
// and is decided with the state in force; the next ones are decided at
// once, without a read, until a read succeeds and the fence holds again.
func TestUnreachableGraymeshDoesNotStallConsumers(t *testing.T) {
	s := signer(t, meshKey)
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{}, "kills": []any{}, "as_of": "now"})
	var down atomic.Bool
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		if down.Load() {
			http.Error(w, "graymesh is down", http.StatusServiceUnavailable)
			return
		}
		g.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx := context.Background()
	f, err := NewFollower(ctx, srv.URL)
	must(t, err)
	f.fenceWait = 300 * time.Millisecond
	tok := s.Sign("gray", "shop-v2", "7", time.Now())

	down.Store(true)
	if d := f.Decide(ctx, tok, time.Now().Add(time.Millisecond)); d.Env != "gray" || f.Unfenced.Load() != 1 {
		t.Fatalf("graymesh down: %+v, unfenced %d, want gray and 1", d, f.Unfenced.Load())
	}
	before := reads.Load()
	for range 3 {
		f.Decide(ctx, tok, time.Now().Add(time.Millisecond))
	}
	if reads.Load() != before || f.Unfenced.Load() != 4 {
		t.Fatalf("after a wait ran out: %d more reads, unfenced %d; want none and 4", reads.Load()-before, f.Unfenced.Load())
	}

	down.Store(false)
	must(t, f.Refresh(ctx))
	before = reads.Load()
	if d := f.Decide(ctx, tok, time.Now().Add(time.Millisecond)); d.Env != "gray" || f.Unfenced.Load() != 4 || reads.Load() == before {
		t.Fatalf("graymesh back: %+v, unfenced %d, %d reads; want the fence to read again", d, f.Unfenced.Load(), reads.Load()-before)
	}
}
