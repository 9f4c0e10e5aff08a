package console

import (
	"context"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// The console reads the metrics only while someone looks, or when the
// config version changes (the baseline of the share since that version):
// on a node whose console nobody opens, a tick costs a version check.
func TestSamplesOnlyWhileViewedOrOnANewVersion(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	o := f.c.observed
	samples := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.samples)
	}
	o.sample()
	now := time.Now()
	for _, at := range []time.Duration{0, 2 * time.Second, 10 * time.Minute} {
		f.c.tick(now.Add(at))
	}
	if n := samples(); n != 1 {
		t.Fatalf("%d samples after ticks with nobody looking and no change, want 1", n)
	}

	f.login() // the releases page shows observed shares: a sample, and a viewer
	viewed := samples()
	f.c.tick(time.Now())
	if n := samples(); n != viewed+1 {
		t.Fatalf("%d samples after a tick with the page open, want %d", n, viewed+1)
	}
	f.c.tick(time.Now().Add(viewerGone + time.Second))
	if n := samples(); n != viewed+1 {
		t.Fatalf("%d samples after a tick a minute after the page was last shown, want %d", n, viewed+1)
	}

	if _, err := f.d.API().Act(context.Background(), control.Action{Release: "shop-v2", Kind: "freeze", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(viewerGone + time.Second)
	f.c.tick(later)
	f.c.tick(later.Add(2 * time.Second))
	if n := samples(); n != viewed+2 {
		t.Fatalf("%d samples after a new config version, nobody looking, want %d (one, the new version's baseline)", n, viewed+2)
	}
}
