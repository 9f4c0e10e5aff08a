package control_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
)

const killsConfig = `
lane: {key: "control-test-lane-key-0123456789abcdef", message_kill_delay: DELAY}
releases:
  - {name: shop-v2, env: gray, percent: 10}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

// TestMessageKillDelayIsALease: with lane.message_kill_delay the lane
// state holds for that long after graymesh answered it — a kill takes
// effect for messages the delay after it — and a shorter delay never
// moves a kill under an answer already given.
func TestMessageKillDelayIsALease(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "graymesh.yaml")
	write := func(delay string) {
		must(t, os.WriteFile(path, []byte(strings.Replace(killsConfig, "DELAY", delay, 1)), 0o600))
	}
	write("2s")
	clock := clocktest.New(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC))
	p, err := control.New(control.Options{Path: path, Clock: clock})
	must(t, err)
	_, asOf := p.Kills()
	if want := clock.Now().Add(2 * time.Second); !asOf.Equal(want) {
		t.Fatalf("as_of %s, want now + 2s (%s)", asOf, want)
	}
	_, err = p.Submit(control.Action{Release: "shop-v2", Kind: "kill"})
	must(t, err)
	kills, _ := p.Kills()
	if len(kills) != 1 || kills[0].KilledAt.Before(asOf) || !kills[0].KilledAt.Before(asOf.Add(time.Millisecond)) {
		t.Fatalf("kills %+v, want one taking effect 2s from now", kills)
	}

	clock.Advance(time.Second)
	_, promised := p.Kills() // vouches for now + 2s
	_, err = p.Submit(control.Action{Release: "shop-v2", Kind: "revive"})
	must(t, err)
	write("0s")
	_, err = p.Submit(control.Reload{})
	must(t, err)
	_, err = p.Submit(control.Action{Release: "shop-v2", Kind: "kill"})
	must(t, err)
	kills, asOf = p.Kills()
	if len(kills) != 2 || !kills[1].KilledAt.After(promised) || asOf.Before(promised) {
		t.Fatalf("after the delay went to 0: kills %+v, as_of %s; an answer vouched for %s", kills, asOf, promised)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
