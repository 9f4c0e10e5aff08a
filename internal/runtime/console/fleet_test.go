package console

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// fakeFleetView answers for shop-v2 what a Kubernetes-mode fleet of three
// nodes would: two serve generation 4, one refused it.
type fakeFleetView struct{ err error }

func (fakeFleetView) Synced() bool             { return true }
func (fakeFleetView) Staleness() time.Duration { return 0 }
func (fakeFleetView) Status() map[string]any   { return nil }
func (fakeFleetView) Due(string)               {}
func (fakeFleetView) ActOnFleet(context.Context, control.FleetAction) (string, error) {
	return "", errors.New("not in this test")
}

func (f fakeFleetView) ReleaseFleet(_ context.Context, name string) (*control.FleetRelease, error) {
	if f.err != nil {
		return nil, f.err
	}
	if name != "shop-v2" {
		return nil, nil
	}
	return &control.FleetRelease{Release: name, Generation: 4, AcceptedGeneration: 4, Accepted: "False", AcceptedReason: "RefusedOnNodes",
		AcceptedMessage: "refused on 1 of 3 nodes (node-c): membership moves alice back to stable", State: "active", Percent: 30, Version: "7",
		Nodes: "2/3", NodesAccepted: 2, NodesRefused: 1, ReadAt: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		NodeList: []control.FleetNode{
			{Name: "node-a", Generation: 4, Version: "7"}, {Name: "node-b", Generation: 4, Version: "7"},
			{Name: "node-c", Generation: 3, Version: "6", RefusedGeneration: 4, Refused: "membership moves alice back to stable"},
		}}, nil
}

// TestReleasePageShowsTheFleet: with a fleet view (Kubernetes mode) the
// release page's Nodes section shows the fleet status and what each node
// serves or refused; the page is built from GET /v1/releases/{name}/fleet.
func TestReleasePageShowsTheFleet(t *testing.T) {
	f := newFleetFixture(t, fakeFleetView{})
	f.login()
	_, page := f.do("GET", "/ui/releases/shop-v2", nil, nil)
	for _, want := range []string{
		`id="fleet-summary"`, "GrayRelease generation 4", "accepted <strong>False</strong> (RefusedOnNodes)",
		"nodes serving / reporting <strong>2/3</strong>, fleet version 7", "2 accepted, 1 refused",
		"refused on 1 of 3 nodes (node-c): membership moves alice back to stable",
		"<td>node-a</td><td>4 ✓</td><td>7</td><td>—</td>",
		"<td>node-c</td><td>3</td><td>6</td><td>generation 4: membership moves alice back to stable</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("release page lacks %q", want)
		}
	}
	if strings.Contains(page, "which nodes serve which version appears here") {
		t.Error("the page says the fleet is not available")
	}
	resp, body := f.do("GET", "/v1/releases/shop-v2/fleet", nil, map[string]string{"Authorization": "Bearer " + f.token})
	if resp.StatusCode != 200 || !strings.Contains(body, `"nodes_refused": 1`) {
		t.Errorf("GET /v1/releases/shop-v2/fleet: %d %s", resp.StatusCode, body)
	}
}

// TestReleasePageFleetUnavailable: file mode keeps the "not available"
// text; a view that fails says why.
func TestReleasePageFleetUnavailable(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	f.login()
	if _, page := f.do("GET", "/ui/releases/shop-v2", nil, nil); !strings.Contains(page, "Not available: which nodes serve which version appears here in Kubernetes mode") {
		t.Errorf("file mode: the Nodes slot is not 'not available'")
	}
	f = newFleetFixture(t, fakeFleetView{err: errors.New("leases: forbidden")})
	f.login()
	if _, page := f.do("GET", "/ui/releases/shop-v2", nil, nil); !strings.Contains(page, "reading it failed: fleet status of shop-v2: leases: forbidden") {
		t.Errorf("a failing view is not explained")
	}
}

// newFleetFixture is the console in Kubernetes mode with fleet: the file
// lists no release, and shop-v2 arrives from the fleet as the source
// would submit it.
func newFleetFixture(t *testing.T, fleet control.Fleet) *fixture {
	t.Helper()
	static := strings.Replace(testConfig, "releases:\n  - {name: shop-v2, env: gray, whitelist: [alice], blacklist: [carol], percent: 30}\n", "", 1)
	f := newFixtureWith(t, static, daemon.Options{Fleet: fleet}, Options{})
	rel := &config.Release{Name: "shop-v2", Env: "gray", Whitelist: []string{"alice"}, Blacklist: []string{"carol"}, Percent: 30, State: config.StateActive}
	if _, err := f.d.Pipeline().Submit(control.ReleaseChange{Name: "shop-v2", Release: rel, Version: "7"}); err != nil {
		t.Fatal(err)
	}
	return f
}
