package control

import (
	"testing"
	"time"
)

// TestKillsRecordWhenEachKillHeld: a kill opens at the instant its config
// comes into force (at startup: always, as nothing says when), a revive
// closes it, a kill again opens another, an unchanged kill keeps its
// instant, and a revived kill is forgotten after killMemory.
func TestKillsRecordWhenEachKillHeld(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	var active []string
	killedA := []string{"a"}

	kills := nextKills(nil, killedA, true, t0)
	if len(kills) != 1 || kills[0].Release != "a" || !kills[0].KilledAt.IsZero() {
		t.Fatalf("killed at startup: %+v, want one kill of a since always", kills)
	}
	if again := nextKills(kills, killedA, true, t0.Add(time.Minute)); len(again) != 1 || !again[0].KilledAt.IsZero() {
		t.Fatalf("a restart with the kill on record: %+v", again)
	}

	kills = nextKills(nil, killedA, false, t0)
	kills = nextKills(kills, killedA, false, t0.Add(time.Second))
	if len(kills) != 1 || !kills[0].KilledAt.Equal(t0) || kills[0].RevivedAt != nil {
		t.Fatalf("killed at t0, config unchanged since: %+v", kills)
	}
	kills = nextKills(kills, active, false, t0.Add(2*time.Second))
	kills = nextKills(kills, killedA, false, t0.Add(3*time.Second))
	if len(kills) != 2 || kills[0].RevivedAt == nil || !kills[0].RevivedAt.Equal(t0.Add(2*time.Second)) ||
		!kills[1].KilledAt.Equal(t0.Add(3*time.Second)) || kills[1].RevivedAt != nil {
		t.Fatalf("killed, revived, killed again: %+v", kills)
	}
	kills = nextKills(kills, killedA, false, t0.Add(2*time.Second+killMemory+time.Second))
	if len(kills) != 1 || !kills[0].KilledAt.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("an hour after the revive: %+v, want only the open kill", kills)
	}
}
