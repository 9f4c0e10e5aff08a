// Package lanekafka carries graymesh's lane through Apache Kafka with the
// franz-go client: Inject puts a request's lane into a record's headers,
// and Consumer consumes a topic for one environment, taking the records
// lanequeue.Processes gives it.
//
// Groups. Stable's consumers form the group Options.Group; an
// environment's consumers the group Group.<env> (e.g. orders.gray). Every
// group reads every record of the topic, and each consumer processes only
// its own: gray's records (a lane naming gray, verified, not killed) in
// the gray group, the rest in the stable group.
//
// Fallback. While an environment's group has no member, stable's
// consumers also process its records, and commit them in that group too,
// so that a consumer of the environment that starts again resumes after
// them: no record is processed twice. When the group empties, stable
// takes over what the group's last consumer left: the records from that
// group's committed offset up to where stable stands, which stable had
// left to it. No record is lost.
//
// The handover is decided on the group's membership as stable last read
// it (Options.LivenessEvery, 1 s by default): in the instant between an
// environment's consumer joining and stable reading the group, a record
// may be processed by both (at least once at the handover, never lost).
package lanekafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/laneprop"
	"github.com/graymesh/graymesh/lanequeue"
)

// Inject puts the lane ctx carries into r's headers (none without one),
// and ctx's trace context with the service's propagator, so the consumer's
// span joins the producer's trace.
func Inject(ctx context.Context, r *kgo.Record) {
	lanequeue.Inject(ctx, headers{r})
	otel.GetTextMapPropagator().Inject(ctx, headers{r})
}

// headers are a record's headers as a propagation carrier.
type headers struct{ r *kgo.Record }

var _ propagation.TextMapCarrier = headers{}

// Set replaces key's header.
func (h headers) Set(key, value string) {
	h.r.Headers = slices.DeleteFunc(h.r.Headers, func(rh kgo.RecordHeader) bool { return rh.Key == key })
	h.r.Headers = append(h.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Get is key's first header's value.
func (h headers) Get(key string) string {
	for _, rh := range h.r.Headers {
		if rh.Key == key {
			return string(rh.Value)
		}
	}
	return ""
}

// Keys are the headers' keys.
func (h headers) Keys() []string {
	out := make([]string, 0, len(h.r.Headers))
	for _, rh := range h.r.Headers {
		out = append(out, rh.Key)
	}
	return out
}

// Lane is r's lane header ("" when none; the first when several).
func Lane(r *kgo.Record) string { return headers{r}.Get(lanequeue.Header) }

// Context is ctx carrying r's lane and trace context: calls the handler
// makes under it pass the lane on (laneprop), so the chain stays in its
// environment, and its spans join the producer's trace.
func Context(ctx context.Context, r *kgo.Record) context.Context {
	ctx = otel.GetTextMapPropagator().Extract(ctx, headers{r})
	if l := Lane(r); l != "" {
		return laneprop.ContextWith(ctx, l)
	}
	return ctx
}

// GroupOf is the consumer group of env's consumers for base.
func GroupOf(base, env string) string {
	if env == lanequeue.Stable {
		return base
	}
	return base + "." + env
}

// Options say what a Consumer consumes, for which environment, and what
// it does with a record.
type Options struct {
	Brokers []string
	Topic   string
	// Group is stable's consumer group; environments' groups are named
	// after it (GroupOf).
	Group string
	// Env is the environment this consumer serves (lanequeue.Stable or
	// e.g. "gray").
	Env string
	// Envs are the other environments whose records a stable consumer
	// takes while their groups are empty (ignored for other consumers).
	Envs     []string
	Follower *lanequeue.Follower
	// Handle processes one record the consumer takes, with the lane's
	// decision; its context carries the lane (Context). An error stops
	// Run: the record and those after it are not committed, and the
	// group delivers them again.
	Handle func(ctx context.Context, r *kgo.Record, d lanequeue.Decision) error
	// LivenessEvery is how often stable reads the other groups'
	// membership (default 1 s).
	LivenessEvery time.Duration
	// Service names the consuming service in its spans (default Group).
	Service string
	Log     *slog.Logger
}

// Consumer consumes Options.Topic for Options.Env.
type Consumer struct {
	o      Options
	client *kgo.Client
	admin  *kadm.Client
	live   sync.Map // env → bool
	// position is, per partition, the offset after the last record this
	// consumer polled (stable's takeover reads up to it).
	mu       sync.Mutex
	position map[int32]int64
	// Processed counts the records handled, Fallback those of them a
	// stable consumer took for an environment with no live consumer
	// (TakenOver of them from that environment's backlog), Left those
	// left to another environment's consumer.
	Processed, Fallback, TakenOver, Left atomic.Int64
}

// New joins env's group for the topic.
func New(o Options) (*Consumer, error) {
	if o.Topic == "" || o.Group == "" || o.Env == "" || o.Follower == nil || o.Handle == nil || len(o.Brokers) == 0 {
		return nil, errors.New("lanekafka: Brokers, Topic, Group, Env, Follower and Handle are required")
	}
	if o.LivenessEvery <= 0 {
		o.LivenessEvery = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Service == "" {
		o.Service = o.Group
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.ConsumerGroup(GroupOf(o.Group, o.Env)),
		kgo.ConsumeTopics(o.Topic), kgo.DisableAutoCommit(),
		// A new group starts at the topic's start: records produced
		// before its first consumer joined are its too.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	return &Consumer{o: o, client: cl, admin: kadm.NewClient(cl), position: map[int32]int64{}}, nil
}

// Run consumes until ctx ends, then leaves the group (its offsets
// committed), so that stable takes over at once. A service waits for Run
// to return before it exits: a process that ends without leaving stays a
// member of its group until the broker's session timeout, and its
// environment's records wait that long.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.client.Close()
	if c.o.Env == lanequeue.Stable {
		go c.watchLiveness(ctx)
	}
	for ctx.Err() == nil {
		fetches := c.client.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			c.o.Log.Warn("fetch", "error", errs[0].Err)
		}
		// Every record polled is decided (taken or left to another
		// environment's consumer), so all of them are committed.
		var decided []*kgo.Record
		var err error
		fetches.EachRecord(func(r *kgo.Record) {
			if err == nil {
				err = c.consume(ctx, r)
				decided = append(decided, r)
			}
		})
		if err != nil {
			return err
		}
		if len(decided) > 0 {
			c.commit(ctx, decided)
		}
	}
	return nil
}

// commitTimeout bounds committing what a batch decided.
const commitTimeout = 10 * time.Second

// commit commits the records a batch decided, in this consumer's group
// and, for stable, in the empty environments' groups. It commits even
// when ctx ended while the batch was handled: a record handled and not
// committed would be handled again by whoever takes the group's records
// over (stable, as the consumer leaves).
func (c *Consumer) commit(ctx context.Context, decided []*kgo.Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := c.client.CommitRecords(ctx, decided...); err != nil {
		c.o.Log.Warn("commit", "error", err)
	}
	c.commitFallbacks(ctx, decided)
}

// consume handles r if this consumer takes it.
func (c *Consumer) consume(ctx context.Context, r *kgo.Record) error {
	d := c.o.Follower.Decide(ctx, Lane(r), producedAt(r))
	c.mu.Lock()
	c.position[r.Partition] = max(c.position[r.Partition], r.Offset+1)
	c.mu.Unlock()
	if !lanequeue.Processes(c.o.Env, d, c.isLive) {
		c.Left.Add(1)
		return nil
	}
	if err := c.handle(ctx, r, d); err != nil {
		return err
	}
	if d.Env != c.o.Env {
		c.Fallback.Add(1)
	}
	return nil
}

func (c *Consumer) handle(ctx context.Context, r *kgo.Record, d lanequeue.Decision) error {
	ctx, span := tracer().Start(Context(ctx, r), "consume "+r.Topic+" "+c.o.Env,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(c.spanAttributes(r, d)...))
	defer span.End()
	if err := c.o.Handle(ctx, r, d); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("lanekafka: record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	c.Processed.Add(1)
	return nil
}

func tracer() trace.Tracer { return otel.Tracer("github.com/graymesh/graymesh/lanequeue/lanekafka") }

// spanAttributes say, in graymesh's trace vocabulary (and OpenTelemetry's
// messaging conventions), which environment processed r and why, so that
// verify-traces checks the message hop like any other: the environment
// that served (this consumer's), the lane's, and, where stable stands in
// for an environment with no live consumer, the fallback that explains
// it.
func (c *Consumer) spanAttributes(r *kgo.Record, d lanequeue.Decision) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", r.Topic),
		attribute.String("messaging.consumer.group.name", GroupOf(c.o.Group, c.o.Env)),
		attribute.Int64("messaging.destination.partition.id", int64(r.Partition)),
		attribute.Int64("messaging.kafka.offset", r.Offset),
		attribute.String(wire.AttrService, c.o.Service),
		attribute.String(wire.AttrVariant, c.o.Env),
		attribute.String(wire.AttrReason, d.Reason),
		attribute.String(wire.AttrLane, d.Env),
	}
	if d.Release != "" {
		attrs = append(attrs, attribute.String(wire.AttrRelease, d.Release))
	}
	if d.Env != c.o.Env {
		attrs = append(attrs, attribute.String(wire.AttrFallback, d.Env+wire.UnavailableSuffix))
	}
	if d.Stress {
		attrs = append(attrs, attribute.String(wire.AttrStress, "1"))
	}
	return attrs
}

// isLive reports whether env's group has a member, as last read; stable
// is always live (this consumer is one). Until the group is read it
// counts as live: stable leaves its records, and takes them over from the
// group's committed offset if the first read finds it empty — never
// processing one that env's consumer processes too.
func (c *Consumer) isLive(env string) bool {
	if env == lanequeue.Stable || env == c.o.Env {
		return true
	}
	v, ok := c.live.Load(env)
	return !ok || v.(bool)
}

// Live reports whether env's consumers are live as this consumer last
// read their group (a stable consumer reads Options.Envs'), and whether it
// has read it at all.
func (c *Consumer) Live(env string) (live, known bool) {
	v, ok := c.live.Load(env)
	return ok && v.(bool), ok
}

// watchLiveness reads the environments' groups now and every
// LivenessEvery; a failed read (the group coordinator not elected yet,
// say) keeps what was known.
func (c *Consumer) watchLiveness(ctx context.Context) {
	t := time.NewTicker(c.o.LivenessEvery)
	defer t.Stop()
	for {
		if err := c.readLiveness(ctx); err != nil && ctx.Err() == nil {
			c.o.Log.Warn("reading the environments' groups", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readLiveness reads every environment's group; one that went empty is
// taken over.
func (c *Consumer) readLiveness(ctx context.Context) error {
	if len(c.o.Envs) == 0 {
		return nil
	}
	groups := make([]string, len(c.o.Envs))
	for i, env := range c.o.Envs {
		groups[i] = GroupOf(c.o.Group, env)
	}
	liveGroups, err := LiveGroups(ctx, c.admin, groups...)
	if err != nil {
		return err
	}
	for _, env := range c.o.Envs {
		live := liveGroups[GroupOf(c.o.Group, env)]
		was := c.isLive(env)
		c.live.Store(env, live)
		if was && !live {
			c.o.Log.Info("environment's consumers gone: stable takes its records", "env", env)
			if err := c.takeOver(ctx, env); err != nil {
				// Not taken over: the next read tries again.
				c.live.Store(env, true)
				return err
			}
		}
	}
	return nil
}

// LiveGroups reads which of groups have a member: a consumer live to take
// its environment's records.
func LiveGroups(ctx context.Context, adm *kadm.Client, groups ...string) (map[string]bool, error) {
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool, len(groups))
	for _, g := range groups {
		d, ok := described[g]
		live[g] = ok && d.Err == nil && len(d.Members) > 0
	}
	return live, nil
}

// takeOver processes what env's last consumer left: for each partition
// stable has read, the records from env's committed offset up to stable's
// position (stable left them to env then), and commits them in env's
// group.
func (c *Consumer) takeOver(ctx context.Context, env string) error {
	group := GroupOf(c.o.Group, env)
	committed, err := c.admin.FetchOffsets(ctx, group)
	if err != nil {
		return err
	}
	c.mu.Lock()
	until := maps.Clone(c.position)
	c.mu.Unlock()
	from := map[int32]kgo.Offset{}
	for p, end := range until {
		start := int64(0)
		if o, ok := committed.Lookup(c.o.Topic, p); ok && o.Err == nil && o.At >= 0 {
			start = o.At
		}
		if start < end {
			from[p] = kgo.NewOffset().At(start)
		}
	}
	if len(from) == 0 {
		return nil
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(c.o.Brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.o.Topic: from}))
	if err != nil {
		return err
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(ctx, takeOverTimeout)
	defer cancel()
	pending := len(from)
	for pending > 0 {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("lanekafka: taking over %s's records: %w", env, ctx.Err())
		}
		var err error
		fetches.EachRecord(func(r *kgo.Record) {
			end := until[r.Partition]
			if err != nil || r.Offset >= end {
				return
			}
			if r.Offset+1 == end {
				pending--
			}
			// Only env's records: stable processed its own already.
			if d := c.o.Follower.Decide(ctx, Lane(r), producedAt(r)); d.Env == env {
				if err = c.handle(ctx, r, d); err == nil {
					c.Fallback.Add(1)
					c.TakenOver.Add(1)
				}
			}
		})
		if err != nil {
			return err
		}
	}
	return c.commitIn(ctx, group, until)
}

// takeOverTimeout bounds reading an environment's backlog: records stable
// has read already are on the broker.
const takeOverTimeout = 30 * time.Second

// commitFallbacks commits, in every environment's group that has no
// member, the offsets stable reached: what stable took for it is done.
func (c *Consumer) commitFallbacks(ctx context.Context, taken []*kgo.Record) {
	if c.o.Env != lanequeue.Stable {
		return
	}
	reached := map[int32]int64{}
	for _, r := range taken {
		reached[r.Partition] = max(reached[r.Partition], r.Offset+1)
	}
	for _, env := range c.o.Envs {
		if c.isLive(env) {
			continue
		}
		if err := c.commitIn(ctx, GroupOf(c.o.Group, env), reached); err != nil && ctx.Err() == nil {
			// The group has a member again: the member's own commits
			// win, and the records since its start may be processed
			// twice (the handover).
			c.o.Log.Info("commit in an environment's group refused", "env", env, "error", err)
		}
	}
}

// commitIn commits offsets for the topic in group (an empty group: the
// broker refuses a commit from outside a group with members).
func (c *Consumer) commitIn(ctx context.Context, group string, offsets map[int32]int64) error {
	os := kadm.Offsets{}
	for p, at := range offsets {
		os.Add(kadm.Offset{Topic: c.o.Topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := c.admin.CommitOffsets(ctx, group, os)
	if err != nil {
		return err
	}
	return resp.Error()
}

// producedAt is when r's lane is checked for expiry: when it was produced
// (the record's timestamp), as the request that produced it carried a
// lane valid then; a record that waited in the topic longer than a lane
// lives is still its environment's. Kills are the state in force now.
func producedAt(r *kgo.Record) time.Time {
	if r.Timestamp.IsZero() {
		return time.Now()
	}
	return r.Timestamp
}
