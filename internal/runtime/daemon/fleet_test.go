package daemon

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// staticOnly is a Kubernetes-mode config file: no releases.
const staticOnly = `
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

type fakeFleet struct{}

func (fakeFleet) Synced() bool             { return true }
func (fakeFleet) Staleness() time.Duration { return 0 }
func (fakeFleet) Status() map[string]any   { return nil }
func (fakeFleet) Due(string)               {}
func (fakeFleet) ActOnFleet(context.Context, control.FleetAction) (string, error) {
	return "", errors.New("no fleet actions in this test")
}

func (fakeFleet) ReleaseFleet(context.Context, string) (*control.FleetRelease, error) {
	return nil, nil
}

func newFleetDaemon(t *testing.T, file string) (*Daemon, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, file)
	return New(t.Context(), path, Options{Fleet: fakeFleet{}, StateDir: filepath.Join(t.TempDir(), "state")}, slog.New(slog.DiscardHandler))
}

func TestApplyFleet(t *testing.T) {
	d, err := newFleetDaemon(t, staticOnly)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Config().Version; v != "0" {
		t.Fatalf("version before any object: %q, want 0", v)
	}
	rel := func(percent float64, state string) *config.Release {
		r := config.Release{Name: "shop-v2", Env: "gray", Percent: percent, State: state}
		r.ApplyDefaults()
		return &r
	}
	steps := []struct {
		name    string
		change  control.ReleaseChange
		refused string
		version string
	}{
		{"added", control.ReleaseChange{Name: "shop-v2", Release: rel(10, ""), Version: "1"}, "", "1"},
		{"ramped", control.ReleaseChange{Name: "shop-v2", Release: rel(20, ""), Version: "2"}, "", "2"},
		{"evicting without rollback", control.ReleaseChange{Name: "shop-v2", Release: rel(5, ""), Version: "3"}, "percent", "2"},
		{"invalid", control.ReleaseChange{Name: "shop-v2", Release: rel(300, ""), Version: "4"}, "percent", "2"},
		{"killed", control.ReleaseChange{Name: "shop-v2", Release: rel(20, config.StateKilled), Version: "5"}, "", "5"},
		{"another release sorts first", control.ReleaseChange{Name: "a-first", Release: &config.Release{Name: "a-first", Env: "gray", Salt: "a", State: config.StateActive}, Version: "6"}, "", "6"},
		{"deleted, a declared rollback", control.ReleaseChange{Name: "shop-v2", Change: config.Change{Rollback: true}, Version: "1"}, "", "1"},
	}
	for _, st := range steps {
		_, err := d.ApplyFleet(st.change)
		switch {
		case st.refused == "" && err != nil:
			t.Fatalf("%s: refused: %v", st.name, err)
		case st.refused != "" && (err == nil || !strings.Contains(err.Error(), st.refused) || !strings.Contains(err.Error(), "release shop-v2")):
			t.Fatalf("%s: error %v, want a refusal naming the release and %q", st.name, err, st.refused)
		}
		if v := d.Config().Version; v != st.version {
			t.Fatalf("%s: version %q in force, want %q", st.name, v, st.version)
		}
	}
	names := []string{}
	for _, r := range d.Config().Releases {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "a-first" {
		t.Errorf("releases in force %v", names)
	}
	if _, err := d.Act(control.Action{Release: "a-first", Kind: "kill"}); err == nil || !strings.Contains(err.Error(), "releases come from the Kubernetes API") {
		t.Errorf("local override in Kubernetes mode: %v, want it refused", err)
	}
	// A file reload keeps the fleet's releases and version.
	if err := d.Reload(); err != nil || d.Config().Version != "1" || len(d.Config().Releases) != 1 {
		t.Errorf("reload: %v, version %s, %d releases", err, d.Config().Version, len(d.Config().Releases))
	}
}

func TestFleetRefusesFileReleases(t *testing.T) {
	_, err := newFleetDaemon(t, good)
	if err == nil || !strings.Contains(err.Error(), "GrayRelease objects") {
		t.Fatalf("a file with releases in Kubernetes mode: %v", err)
	}
}
