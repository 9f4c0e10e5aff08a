package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/lanequeue"
)

// TestMessageExplanationSaysWhoTakesIt: the printed explanation names the
// consumer that takes the message and why — gray's group with a member,
// stable standing in when it has none, a forged lane refused — and never
// claims a group is live that nobody read.
func TestMessageExplanationSaysWhoTakesIt(t *testing.T) {
	yes, no := true, false
	gray := lanequeue.Decision{Env: "gray", Release: "shop-v2", Reason: wire.ReasonLane}
	for _, tt := range []struct {
		name string
		ex   MessageExplanation
		want []string
	}{
		{"gray live", MessageExplanation{Decision: gray, Group: "notifier.gray", Live: &yes, ConsumedBy: "gray", ConsumerGroup: "notifier.gray"},
			[]string{"lane:        verified, release shop-v2", "consumed by: gray's consumers (group notifier.gray): the group has a member"}},
		{"gray gone", MessageExplanation{Decision: gray, Group: "notifier.gray", Live: &no, ConsumedBy: lanequeue.Stable, ConsumerGroup: "notifier"},
			[]string{"consumed by: stable's consumers (group notifier): group notifier.gray has no member, stable stands in (fallback gray-unavailable)"}},
		{"liveness not read", MessageExplanation{Decision: gray, ConsumedBy: "gray"},
			[]string{"consumed by: gray's consumers while gray has a live consumer; stable's otherwise"}},
		{"forged", MessageExplanation{Decision: lanequeue.Decision{Env: lanequeue.Stable, Reason: wire.ReasonLaneRefused, Problem: "lane-signature"}, ConsumedBy: lanequeue.Stable},
			[]string{"lane:        refused (lane-signature)", "reason:      " + wire.ReasonLaneRefused, "consumed by: stable's consumers\n"}},
	} {
		var b bytes.Buffer
		tt.ex.ProducedAt = time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
		printMessageExplanation(&b, tt.ex)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, b.String(), w)
			}
		}
		if tt.ex.Live == nil && strings.Contains(b.String(), "has a member") {
			t.Errorf("%s: claims a member nobody read: %q", tt.name, b.String())
		}
	}
}
