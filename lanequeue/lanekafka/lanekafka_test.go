package lanekafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
