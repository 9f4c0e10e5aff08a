package daemon

import (
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
)

// offeringFleet stands for the kube source: when a held change is due it
// offers the object's change again, with the version the fleet has then.
type offeringFleet struct {
	fakeFleet
	d       *Daemon
	latest  map[string]control.ReleaseChange
	version func() string
}

func (f *offeringFleet) Due(name string) {
	ch := f.latest[name]
	ch.Version = f.version()
	_, _ = f.d.ApplyFleet(ch)
}

// TestFleetHoldsPerRelease: a change of release a with effective_at in
// ten minutes is held for a alone; a change of b applied now goes in
// force without pulling a's change forward (the old single pending config
// did: b's change was built from a file already carrying a's new spec);
// at a's time, a's change goes in force with the fleet's version then.
func TestFleetHoldsPerRelease(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	f := &offeringFleet{latest: map[string]control.ReleaseChange{}}
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, staticOnly)
	d, err := New(t.Context(), path, Options{Fleet: f, Clock: clock}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	rel := func(name string, percent float64) *config.Release {
		r := config.Release{Name: name, Env: "gray", Salt: name, Percent: percent}
		r.ApplyDefaults()
		return &r
	}
	offer := func(ch control.ReleaseChange) bool {
		t.Helper()
		f.latest[ch.Name] = ch
		pending, err := d.ApplyFleet(ch)
		if err != nil {
			t.Fatalf("%s: %v", ch.Name, err)
		}
		return pending
	}
	percents := func() map[string]float64 {
		out := map[string]float64{}
		for _, r := range d.Config().Releases {
			out[r.Name] = r.Percent
		}
		return out
	}
	// Generations: a 1, b 1 → version 2.
	offer(control.ReleaseChange{Name: "a", Release: rel("a", 10), Version: "1"})
	offer(control.ReleaseChange{Name: "b", Release: rel("b", 10), Version: "2"})

	at := t0.Add(10 * time.Minute)
	// a generation 2, at 50% in ten minutes: the version in force keeps
	// a's generation 1 until then.
	if !offer(control.ReleaseChange{Name: "a", Release: rel("a", 50), EffectiveAt: &at, Version: "3"}) {
		t.Fatal("a's future change was not held")
	}
	if p := percents(); p["a"] != 10 || d.Config().Version != "2" {
		t.Fatalf("after holding a: %v at version %s, want a at 10 under version 2", p, d.Config().Version)
	}
	// b generation 2, now: in force, a's held change not with it.
	if offer(control.ReleaseChange{Name: "b", Release: rel("b", 20), Version: "3"}) {
		t.Fatal("b's change held")
	}
	if p := percents(); p["a"] != 10 || p["b"] != 20 || d.Config().Version != "3" {
		t.Fatalf("after b: %v at version %s, want a 10, b 20 under version 3", p, d.Config().Version)
	}
	if held := d.heldOf(); !slices.Equal(held, []string{"a"}) {
		t.Fatalf("held %v, want [a]", held)
	}
	clock.Advance(9 * time.Minute)
	if p := percents(); p["a"] != 10 {
		t.Fatalf("a in force a minute early: %v", p)
	}
	// The fleet counts a's generation 2 once it is in force: 2 + 2.
	f.version = func() string { return "4" }
	clock.Advance(time.Minute)
	if p := percents(); p["a"] != 50 || p["b"] != 20 || d.Config().Version != "4" {
		t.Fatalf("at a's time: %v at version %s, want a 50, b 20 under version 4", p, d.Config().Version)
	}
	if held := d.heldOf(); len(held) != 0 {
		t.Fatalf("still held after its time: %v", held)
	}
	var results []string
	for _, c := range d.History("a") {
		if slices.Contains(c.Releases, "a") {
			results = append(results, c.Result+" "+c.Source)
		}
	}
	if len(results) < 2 || results[0] != "accepted kubernetes (effective_at)" || results[1] != "pending kubernetes" {
		t.Fatalf("history of a (newest first): %v", results)
	}
}

// heldOf is the releases held, sorted.
func (d *Daemon) heldOf() []string {
	return slices.Sorted(maps.Keys(d.pipe.Status().PendingReleases))
}

// TestFleetHeldChangeReplaced: a newer change of the release (here its
// deletion) replaces its held change, which never comes into force.
func TestFleetHeldChangeReplaced(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	f := &offeringFleet{latest: map[string]control.ReleaseChange{}, version: func() string { return "9" }}
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, staticOnly)
	d, err := New(t.Context(), path, Options{Fleet: f, Clock: clock}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	r := config.Release{Name: "a", Env: "gray", Salt: "a", Percent: 10}
	r.ApplyDefaults()
	if _, err := d.ApplyFleet(control.ReleaseChange{Name: "a", Release: &r, Version: "1"}); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	later := r
	later.Percent = 50
	if p, err := d.ApplyFleet(control.ReleaseChange{Name: "a", Release: &later, EffectiveAt: &at, Version: "2"}); err != nil || !p {
		t.Fatalf("held: %v %v", p, err)
	}
	// The object is deleted before its time: the removal replaces the
	// held change, which never comes into force.
	if _, err := d.ApplyFleet(control.ReleaseChange{Name: "a", Change: config.Change{Rollback: true}, Version: "3"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if n := len(d.Config().Releases); n != 0 || d.Config().Version != "3" {
		t.Fatalf("after the removal and the held change's time: %d releases at version %s", n, d.Config().Version)
	}
}
