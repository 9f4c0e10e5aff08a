package gate

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// An accepted drop that now starts from a higher level drops more subjects
// than was accepted: it is reported again.
func TestEvictionsAcceptedDropFromHigherLevel(t *testing.T) {
	old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
	step := []config.Step{{At: diffAt.Add(time.Hour), Percent: 20}}
	old.Releases[0].Schedule, next.Releases[0].Schedule = step, step
	next.Releases[0].Percent = 50
	want := []string{"release shop-v2: rule schedule-lowered: schedule[0] lowers percent 50 → 20 at 2026-11-21T13:00:00Z"}
	if got := errStrings(EvictionsAt(old, next, diffAt)); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDiffSchedule(t *testing.T) {
	old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
	next.Releases[0].Schedule = []config.Step{{At: diffAt.Add(time.Hour), Percent: 50}}
	if d := DiffAt(old, next, 10000, diffAt)[0]; d.ToGray != 0 {
		t.Errorf("before the step nobody moves: %+v", d)
	}
	if d := DiffAt(old, next, 10000, diffAt.Add(2*time.Hour))[0]; math.Abs(d.ToGray-0.20) > 0.01 {
		t.Errorf("after the step 20%% enter gray: %+v", d)
	}
	at := diffAt.Add(2 * time.Hour)
	next.EffectiveAt = &at
	if d := DiffAt(old, next, 10000, diffAt)[0]; math.Abs(d.ToGray-0.20) > 0.01 {
		t.Errorf("effective_at past the step: %+v", d)
	}
}
