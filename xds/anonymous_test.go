package xds

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// goldenNow is when golden files sign the lanes of Envoy's own split.
var goldenNow = time.Unix(1_800_000_000, 0)

func nativePlan(t *testing.T, killed bool) *plan.Plan {
	t.Helper()
	doc, err := os.ReadFile("testdata/native.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(doc)
	if killed {
		cfg = strings.Replace(cfg, "traffic_percent: 25", "traffic_percent: 25\n    state: killed", 1)
	}
	return parsePlanAt(t, cfg, "7", false)
}

// buildEdgesAndInner builds the shared listener's resources and the
// frontend (edge) and orders (inner) sidecars'.
func buildEdgesAndInner(t *testing.T, p *plan.Plan) (shared, edge, inner *Resources) {
	t.Helper()
	var err error
	if shared, err = Build(p); err != nil {
		t.Fatal(err)
	}
	if edge, err = BuildSidecar(p, p.Service("frontend")); err != nil {
		t.Fatal(err)
	}
	if inner, err = BuildSidecar(p, p.Service("orders")); err != nil {
		t.Fatal(err)
	}
	return shared, edge, inner
}

// TestAnonymousRouteSplitsWithoutGraymesh: the edges (the shared listener
// and the edge sidecar) match a request with no identity first, split it
// by weighted clusters that each set the decision and the lane of their
// environment, and turn ext_proc off for it; inner sidecars have no such
// route.
func TestAnonymousRouteSplitsWithoutGraymesh(t *testing.T) {
	p := nativePlan(t, false).Signed(goldenNow)
	shared, edge, inner := buildEdgesAndInner(t, p)
	for name, first := range map[string]*routev3.Route{
		"shared": shared.Routes[0].GetVirtualHosts()[0].GetRoutes()[0],
		"edge":   edge.Routes[0].GetVirtualHosts()[0].GetRoutes()[0],
	} {
		if first.GetName() != "frontend/"+plan.RouteAnonymous {
			t.Fatalf("%s: first route %s", name, first.GetName())
		}
		var absent []string
		for _, h := range first.GetMatch().GetHeaders() {
			if !h.GetPresentMatch() || !h.GetInvertMatch() {
				t.Fatalf("%s: matcher %v is not an absence", name, h)
			}
			absent = append(absent, h.GetName())
		}
		if want := "authorization cookie x-graymesh-member x-graymesh-stress"; strings.Join(absent, " ") != want {
			t.Fatalf("%s: absent headers %q, want %q", name, strings.Join(absent, " "), want)
		}
		// Not built at all for the route: a FilterConfig disabled, with no
		// config of the filter's own.
		var off routev3.FilterConfig
		if err := first.GetTypedPerFilterConfig()[wire.ExtProcFilterName].UnmarshalTo(&off); err != nil || !off.GetDisabled() || off.GetConfig() != nil {
			t.Fatalf("%s: ext_proc per route %v (%v), want disabled", name, &off, err)
		}
		wc := first.GetRoute().GetWeightedClusters().GetClusters()
		if len(wc) != 2 || wc[0].GetWeight().GetValue() != 7500 || wc[1].GetWeight().GetValue() != 2500 {
			t.Fatalf("%s: weights %v", name, wc)
		}
		for i, env := range []string{"stable", "gray"} {
			got := map[string]string{}
			for _, h := range wc[i].GetRequestHeadersToAdd() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			want := map[string]string{
				wire.HeaderEnv: env, wire.HeaderRelease: "shop-split", wire.HeaderReason: wire.ReasonTrafficEnvoy,
				wire.HeaderVersion: "7", wire.HeaderLane: p.Lane.Signer.Sign(env, "shop-split", "7", goldenNow),
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s: %s branch sets %s=%q, want %q", name, env, k, got[k], v)
				}
			}
			if wc[i].GetName() != "frontend|"+env {
				t.Fatalf("%s: branch %d cluster %s", name, i, wc[i].GetName())
			}
		}
	}
	for _, r := range inner.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if r.GetName() == "orders/"+plan.RouteAnonymous {
			t.Fatal("an inner sidecar splits anonymous traffic")
		}
	}
}

// TestTurnSignsThePlanInForce: a turn signs the next window's lanes into
// a new snapshot, and never puts back the split of a plan a newer one
// replaced (a kill).
func TestTurnSignsThePlanInForce(t *testing.T) {
	s := New(context.Background(), slog.New(slog.DiscardHandler))
	if err := s.Update(nativePlan(t, false)); err != nil {
		t.Fatal(err)
	}
	next, ok := s.nextTurn(goldenNow)
	if !ok || !next.Equal(goldenNow.Add(2*time.Second)) {
		t.Fatalf("next turn %v %v, want a 2 s window after %v", next, ok, goldenNow)
	}
	before := s.Version()
	if err := s.Turn(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	turned := s.Version()
	if turned == before {
		t.Fatal("a turn an hour later pushed the same lanes")
	}
	if err := s.Update(nativePlan(t, true)); err != nil {
		t.Fatal(err)
	}
	killed := s.Version()
	if _, ok := s.nextTurn(goldenNow); ok {
		t.Fatal("a killed release still turns lanes")
	}
	if err := s.Turn(time.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.Version() != killed {
		t.Fatal("a turn after the kill changed what Envoy is offered")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.current[defaultGroup].GetResources("type.googleapis.com/envoy.config.route.v3.RouteConfiguration") {
		rc, _ := r.(*routev3.RouteConfiguration)
		if rc.GetVirtualHosts()[0].GetRoutes()[0].GetName() == "frontend/"+plan.RouteAnonymous {
			t.Fatal("the kill left the anonymous route in force")
		}
	}
}
