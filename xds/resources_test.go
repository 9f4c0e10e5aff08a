package xds

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/internal/testing/golden"
)

// kinds are the resource types pinned by golden files, one file per
// config and kind.
var kinds = []string{"clusters", "routes", "listeners", "extensions"}

// fleetVersions are the testdata configs put in force as Kubernetes mode
// does, with a fleet version.
var fleetVersions = map[string]string{"killed-fleet.yaml": "12", "returning.yaml": "7"}

// TestGolden pins the generated xDS resources for each config in testdata,
// one golden file per resource type holding every group's resources.
// Regenerate with: go test ./xds -run TestGolden -update (which also
// removes a golden file no config produces any more).
func TestGolden(t *testing.T) {
	golden.Own(t, "testdata/*.golden")
	configs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(configs) == 0 {
		t.Fatalf("no testdata configs: %v", err)
	}
	for _, path := range configs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p := loadPlan(t, path)
			if v, ok := fleetVersions[filepath.Base(path)]; ok {
				p = loadFleetPlan(t, path, v)
			}
			groups, err := BuildAll(p.Signed(goldenNow))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			for _, name := range sortedKeys(groups) {
				if err := groups[name].Validate(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for kind, b := range render(t, groups[name]) {
					got[kind] = append(got[kind], []byte("// group "+name+"\n")...)
					got[kind] = append(got[kind], b...)
				}
			}
			for _, kind := range kinds {
				golden.Check(t, strings.TrimSuffix(path, ".yaml")+"."+kind+".golden", got[kind])
			}
		})
	}
}

func sortedKeys(m map[string]*Resources) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// render prints each kind of r's resources as indented JSON.
func render(t *testing.T, r *Resources) map[string][]byte {
	t.Helper()
	doc := map[string][]json.RawMessage{}
	add := func(kind string, m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// protojson randomises whitespace; normalise it.
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			t.Fatal(err)
		}
		doc[kind] = append(doc[kind], buf.Bytes())
	}
	for _, c := range r.Clusters {
		add("clusters", c)
	}
	for _, rc := range r.Routes {
		add("routes", rc)
	}
	for _, l := range r.Listeners {
		add("listeners", l)
	}
	for _, e := range r.Extensions {
		add("extensions", e)
	}
	out := map[string][]byte{}
	for _, kind := range kinds {
		if doc[kind] == nil {
			doc[kind] = []json.RawMessage{}
		}
		b, err := json.MarshalIndent(doc[kind], "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = append(b, '\n')
	}
	return out
}

// TestValidateNamesTheResource builds from plans no config would give:
// Envoy's validation must name the resource and the field.
func TestValidateNamesTheResource(t *testing.T) {
	base := func() *plan.Plan {
		return &plan.Plan{Mesh: plan.Mesh{ExtProc: plan.Endpoint{Host: "127.0.0.1", Port: 18081}, MessageTimeout: time.Second}}
	}
	tests := []struct {
		name string
		plan func() *plan.Plan
		want []string
	}{
		{"endpoint without a host", func() *plan.Plan {
			p := base()
			p.Services = []plan.Service{{Name: "shop", Domains: []string{"shop"},
				Envs:   []plan.Env{{Name: "stable", Endpoints: []plan.Endpoint{{Port: 80}}}},
				Routes: []plan.Route{{Name: "default", Match: plan.Match{Kind: plan.MatchAll}, Backends: []plan.Backend{{Env: "stable"}}}},
			}}
			return p
		}, []string{"cluster shop|stable", "Address"}},
		{"virtual host without domains", func() *plan.Plan {
			p := base()
			p.Services = []plan.Service{{Name: "shop",
				Envs:   []plan.Env{{Name: "stable", Endpoints: []plan.Endpoint{{Host: "10.0.0.1", Port: 80}}}},
				Routes: []plan.Route{{Name: "default", Match: plan.Match{Kind: plan.MatchAll}, Backends: []plan.Backend{{Env: "stable"}}}},
			}}
			return p
		}, []string{"route configuration " + RouteName, "Domains"}},
		{"negative timeout", func() *plan.Plan {
			p := base()
			p.Mesh.MessageTimeout = -time.Second
			return p
		}, []string{"listener " + ListenerName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Build(tt.plan())
			if err == nil {
				err = res.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func TestSnapshotVersionIsContentHash(t *testing.T) {
	a, b := loadPlan(t, "testdata/demo.yaml"), loadPlan(t, "testdata/weighted.yaml")
	version := func(p *plan.Plan) string {
		res, err := Build(p)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := res.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap.GetVersion("type.googleapis.com/envoy.config.listener.v3.Listener")
	}
	if va1, va2, vb := version(a), version(a), version(b); va1 != va2 || va1 == vb {
		t.Fatalf("versions %s %s %s", va1, va2, vb)
	}
}

func TestWeightedRoute(t *testing.T) {
	res, err := Build(loadPlan(t, "testdata/weighted.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	vhs := res.Routes[0].GetVirtualHosts()
	def := vhs[0].GetRoutes()[len(vhs[0].GetRoutes())-1]
	wc := def.GetRoute().GetWeightedClusters().GetClusters()
	if len(wc) != 2 || wc[0].GetWeight().GetValue() != 8750 || wc[1].GetWeight().GetValue() != 1250 {
		t.Fatalf("weights %v", wc)
	}
	if h := wc[1].GetRequestHeadersToAdd()[0].GetHeader(); h.GetKey() != "x-gray-env" || h.GetValue() != "canary" {
		t.Fatalf("canary branch adds %v", h)
	}
	// search has no canary: its default stays plain stable.
	sdef := vhs[1].GetRoutes()[len(vhs[1].GetRoutes())-1]
	if sdef.GetRoute().GetCluster() != "search|stable" {
		t.Fatalf("search default %v", sdef.GetRoute())
	}
	// A hostname endpoint makes the cluster STRICT_DNS.
	for _, c := range res.Clusters {
		if c.GetName() == "checkout|canary" && c.GetType().String() != "STRICT_DNS" {
			t.Fatalf("checkout|canary type %v", c.GetType())
		}
	}
}

// loadPlan builds the plan of the config file at path.
func loadPlan(t *testing.T, path string) *plan.Plan {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parsePlan(t, string(b))
}

// loadFleetPlan is loadPlan in Kubernetes mode: the config in force
// under fleet version.
func loadFleetPlan(t *testing.T, path, version string) *plan.Plan {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parsePlanAt(t, string(b), version, true)
}

// parsePlan builds the plan of a config document, compiled as graymesh
// compiles it: the plan then carries the lane's public keys.
func parsePlan(t *testing.T, doc string) *plan.Plan {
	t.Helper()
	return parsePlanAt(t, doc, "", false)
}

// parsePlanAt is parsePlan for a config put in force under version, a
// fleet's when fleet.
func parsePlanAt(t *testing.T, doc, version string, fleet bool) *plan.Plan {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version, cfg.FleetVersion = version, fleet
	p, err := gray.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.Plan
}

// TestInnerSidecarAsksNoGraymesh: only the edge sidecar's inbound listener
// has the ext_proc filter; every inner sidecar's verifies the lane in
// Envoy (jwt_authn) with the plan's public keys, and only the edge strips
// a client's lane.
func TestInnerSidecarAsksNoGraymesh(t *testing.T) {
	p := loadPlan(t, "testdata/mesh.yaml")
	for _, svc := range p.Sidecars() {
		res, err := BuildSidecar(p, svc)
		if err != nil {
			t.Fatal(err)
		}
		in := res.Listeners[0]
		var hcm hcmv3.HttpConnectionManager
		if err := in.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatal(err)
		}
		var filters []string
		for _, f := range hcm.GetHttpFilters() {
			filters = append(filters, f.GetName())
		}
		want := []string{LaneFilterName, "envoy.filters.http.router"}
		if svc.Sidecar.Edge {
			want = []string{wire.ExtProcFilterName, "envoy.filters.http.router"}
		}
		if !slices.Equal(filters, want) {
			t.Errorf("%s inbound filters %v, want %v", svc.Name, filters, want)
		}
		var strip earlymutationv3.HeaderMutation
		if err := hcm.GetEarlyHeaderMutationExtensions()[0].GetTypedConfig().UnmarshalTo(&strip); err != nil {
			t.Fatal(err)
		}
		stripsLane := strings.Contains(strip.String(), wire.HeaderLane)
		if stripsLane != svc.Sidecar.Edge {
			t.Errorf("%s strips the lane: %v", svc.Name, stripsLane)
		}
		if svc.Sidecar.Edge {
			if len(res.Extensions) != 0 {
				t.Errorf("the edge sidecar has a lane check: %v", res.Extensions)
			}
			continue
		}
		// The lane check's config comes over ECDS: a key change replaces
		// no listener.
		if hcm.GetHttpFilters()[0].GetConfigDiscovery() == nil || len(res.Extensions) != 1 || res.Extensions[0].GetName() != LaneFilterName {
			t.Fatalf("%s: lane check %v, extensions %v", svc.Name, hcm.GetHttpFilters()[0], res.Extensions)
		}
		var check jwtauthnv3.JwtAuthentication
		if err := res.Extensions[0].GetTypedConfig().UnmarshalTo(&check); err != nil {
			t.Fatal(err)
		}
		if got := check.GetProviders()["graymesh_lane"].GetLocalJwks().GetInlineString(); got != p.Lane.Keys {
			t.Errorf("%s: the lane filter's keys %s, want the plan's %s", svc.Name, got, p.Lane.Keys)
		}
	}
}

// TestFallbackHeaderIsGraymeshsOwn: the fallback listener strips nothing,
// so whoever reaches it may send any x-gray-env. The x-gray-fallback it
// sets is one of graymesh's own values, chosen by an exact match on an
// environment the service has, never built from the caller's text; any
// other request is served stable with neither header.
func TestFallbackHeaderIsGraymeshsOwn(t *testing.T) {
	p := loadPlan(t, "testdata/mesh.yaml")
	checked := 0
	for _, svc := range p.Sidecars() {
		if svc.Sidecar.FallbackPort == 0 {
			continue
		}
		res, err := BuildSidecar(p, svc)
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range res.Routes {
			if !strings.HasPrefix(rc.GetName(), "fallback|") {
				continue
			}
			checked++
			routes := rc.GetVirtualHosts()[0].GetRoutes()
			for _, r := range routes {
				for _, h := range r.GetRequestHeadersToAdd() {
					v := h.GetHeader().GetValue()
					if strings.Contains(v, "%") {
						t.Errorf("%s: route %s sets %s from a request header: %q", rc.GetName(), r.GetName(), h.GetHeader().GetKey(), v)
					}
					env, _ := strings.CutSuffix(v, "-unavailable")
					if h.GetHeader().GetKey() == wire.HeaderFallback && (env == "stable" || !svc.Has(env) ||
						r.GetMatch().GetHeaders()[0].GetStringMatch().GetExact() != env) {
						t.Errorf("%s: route %s sets %q for a request that does not name %q", rc.GetName(), r.GetName(), v, env)
					}
				}
			}
			last := routes[len(routes)-1]
			if len(last.GetMatch().GetHeaders()) != 0 || !slices.Contains(last.GetRequestHeadersToRemove(), wire.HeaderFallback) ||
				!slices.Contains(last.GetRequestHeadersToRemove(), wire.HeaderEnv) {
				t.Errorf("%s: the last route %v does not drop the caller's x-gray-fallback and x-gray-env", rc.GetName(), last)
			}
		}
	}
	if checked == 0 {
		t.Fatal("testdata/mesh.yaml has no fallback listener")
	}
}

// TestEdgeSpanSaysWhenGraymeshsAnswerWasLost: where graymesh decides, the
// sidecar's span carries reason "error" when graymesh's answer (which
// hands the reason over as dynamic metadata) never took effect, so traces
// tell a fail-open from a decision; listeners that ask no graymesh have no
// such default.
func TestEdgeSpanSaysWhenGraymeshsAnswerWasLost(t *testing.T) {
	p := loadPlan(t, "testdata/mesh.yaml")
	edges := 0
	for _, svc := range p.Sidecars() {
		res, err := BuildSidecar(p, svc)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Listeners {
			var hcm hcmv3.HttpConnectionManager
			if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				t.Fatal(err)
			}
			asks := slices.ContainsFunc(hcm.GetHttpFilters(), func(f *hcmv3.HttpFilter) bool { return f.GetName() == wire.ExtProcFilterName })
			def := ""
			for _, tag := range hcm.GetTracing().GetCustomTags() {
				if tag.GetTag() == wire.AttrReason {
					def = tag.GetRequestHeader().GetDefaultValue() + tag.GetMetadata().GetDefaultValue()
				}
			}
			if asks {
				edges++
			}
			// The edge's span, the root of a chain, names the environment
			// the chain travels in: what Jaeger's search results show.
			if named := strings.HasSuffix(hcm.GetTracing().GetOperation(), " %REQ(x-gray-env)%"); named != asks {
				t.Errorf("%s: operation %q names the chain's environment: %v, want %v", l.GetName(), hcm.GetTracing().GetOperation(), named, asks)
			}
			if want := map[bool]string{true: wire.ReasonError}[asks]; def != want {
				t.Errorf("%s: reason tag default %q, want %q", l.GetName(), def, want)
			}
		}
	}
	if edges == 0 {
		t.Fatal("testdata/mesh.yaml has no edge listener")
	}
}
