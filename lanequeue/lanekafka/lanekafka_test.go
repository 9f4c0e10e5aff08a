package lanekafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/laneprop"
	"github.com/graymesh/graymesh/lanequeue"
)

// TestRecordCarriesTheLane: Inject writes the request's lane into the
// record, Lane and Context read it back, and a record without one has
// none; groups are named after stable's.
func TestRecordCarriesTheLane(t *testing.T) {
	r := &kgo.Record{}
	Inject(laneprop.ContextWith(context.Background(), "a.b.c"), r)
	if Lane(r) != "a.b.c" || laneprop.FromContext(Context(context.Background(), r)) != "a.b.c" {
		t.Fatalf("headers %v", r.Headers)
	}
	plain := &kgo.Record{}
	Inject(context.Background(), plain)
	if len(plain.Headers) != 0 || Lane(plain) != "" || laneprop.FromContext(Context(context.Background(), plain)) != "" {
		t.Fatalf("a record without a lane: %v", plain.Headers)
	}
	if GroupOf("notifier", lanequeue.Stable) != "notifier" || GroupOf("notifier", "gray") != "notifier.gray" {
		t.Fatal("group names")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if producedAt(&kgo.Record{Timestamp: at}) != at {
		t.Fatal("a record's lane is not checked at its produce time")
	}
}

// TestNewRefusesWhatItCannotRun: every option a consumer needs.
func TestNewRefusesWhatItCannotRun(t *testing.T) {
	if _, err := New(Options{Topic: "t", Group: "g", Env: "gray"}); err == nil {
		t.Fatal("a consumer without brokers, follower or handler")
	}
}

// TestSpanSaysWhoServedAndWhy: the consume span speaks graymesh's trace
// vocabulary: stable processing a gray record names the fallback.
func TestSpanSaysWhoServedAndWhy(t *testing.T) {
	c := &Consumer{o: Options{Group: "notifier", Env: lanequeue.Stable, Service: "notifier"}}
	r := &kgo.Record{Topic: "orders", Partition: 1, Offset: 7}
	got := map[string]string{}
	for _, kv := range c.spanAttributes(r, lanequeue.Decision{Env: "gray", Release: "shop-v2", Reason: wire.ReasonLane, Stress: true}) {
		got[string(kv.Key)] = kv.Value.String()
	}
	want := map[string]string{
		wire.AttrService: "notifier", wire.AttrVariant: lanequeue.Stable, wire.AttrLane: "gray", wire.AttrReason: wire.ReasonLane,
		wire.AttrFallback: "gray" + wire.UnavailableSuffix, wire.AttrRelease: "shop-v2", wire.AttrStress: "1",
		"messaging.consumer.group.name": "notifier", "messaging.kafka.offset": "7",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
