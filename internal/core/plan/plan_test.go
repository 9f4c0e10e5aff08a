package plan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRoutes(t *testing.T) {
	const services = `
services:
  - name: checkout
    environments:
      stable: [10.0.0.1:8080]
      canary: [checkout-canary.shop.svc:8080]
      blue: [10.0.0.3:8080]
  - name: search
    environments:
      stable: [10.0.1.1:8080]
`
	stable := []Backend{{Env: config.Stable, StampEnv: true}}
	tests := []struct {
		name     string
		releases string
		service  string
		want     []Route
	}{
		{"environments in order, then other-env, then stable", "", "checkout", []Route{
			{Name: "blue", Match: Match{Kind: MatchEnv, Env: "blue"}, Backends: []Backend{{Env: "blue"}}},
			{Name: "canary", Match: Match{Kind: MatchEnv, Env: "canary"}, Backends: []Backend{{Env: "canary"}}},
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: stable},
		}},
		{"weighted release splits the default", "releases: [{name: c, env: canary, traffic_percent: 12.5}]", "checkout", []Route{
			{Name: "blue", Match: Match{Kind: MatchEnv, Env: "blue"}, Backends: []Backend{{Env: "blue"}}},
			{Name: "canary", Match: Match{Kind: MatchEnv, Env: "canary"}, Backends: []Backend{{Env: "canary"}}},
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: []Backend{
				{Env: config.Stable, Weight: 8750, StampEnv: true}, {Env: "canary", Weight: 1250, StampEnv: true},
			}},
		}},
		{"weighted release skips a service without its environment", "releases: [{name: c, env: canary, traffic_percent: 12.5}]", "search", []Route{
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: stable},
		}},
		{"a killed weighted release splits nothing", "releases: [{name: c, env: canary, traffic_percent: 12.5, state: killed}]", "search", []Route{
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: stable},
		}},
		{"a frozen weighted release splits nothing", "lane: {key: 0123456789abcdef0123456789abcdef}\nmembership: {enabled: true}\nreleases: [{name: c, env: canary, traffic_percent: 12.5, state: frozen}]", "checkout", []Route{
			{Name: "blue", Match: Match{Kind: MatchEnv, Env: "blue"}, Backends: []Backend{{Env: "blue"}}},
			{Name: "canary", Match: Match{Kind: MatchEnv, Env: "canary"}, Backends: []Backend{{Env: "canary"}}},
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: stable},
		}},
		{"all traffic weighted leaves one branch", "releases: [{name: c, env: canary, traffic_percent: 100}]", "checkout", []Route{
			{Name: "blue", Match: Match{Kind: MatchEnv, Env: "blue"}, Backends: []Backend{{Env: "blue"}}},
			{Name: "canary", Match: Match{Kind: MatchEnv, Env: "canary"}, Backends: []Backend{{Env: "canary"}}},
			{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}},
			{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: []Backend{{Env: "canary", Weight: TotalWeight, StampEnv: true}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(parse(t, tt.releases+services))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Service(tt.service).Routes; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("routes\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSidecarsAndFallback(t *testing.T) {
	p, err := Build(parse(t, `
lane: {key: 0123456789abcdef0123456789abcdef}
services:
  - name: frontend
    environments: {stable: [127.0.0.1:9001], gray: [127.0.0.1:9002]}
    sidecar: {address: 127.0.0.1, inbound_port: 10001, outbound_port: 10101, edge: true, fallback_port: 10201}
  - name: orders
    environments: {stable: [127.0.0.1:9011]}
    sidecar: {address: 127.0.0.1, inbound_port: 10002, outbound_port: 10102}
  - name: plain
    environments: {stable: [127.0.0.1:9021]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Sidecars()); got != 2 {
		t.Fatalf("%d sidecars, want 2", got)
	}
	fe := p.Service("frontend")
	if want := []Peer{{Name: "orders", Inbound: Endpoint{Host: "127.0.0.1", Port: 10002}}}; !reflect.DeepEqual(fe.Sidecar.Peers, want) {
		t.Fatalf("frontend peers %+v, want %+v", fe.Sidecar.Peers, want)
	}
	for _, tt := range []struct{ service, env, want string }{
		{"frontend", "gray", ""},
		{"frontend", "stable", ""},
		{"frontend", "", ""},
		{"orders", "gray", "no-gray-version"},
		{"orders", "stable", ""},
	} {
		if got := p.Service(tt.service).FallbackFor(tt.env); got != tt.want {
			t.Errorf("%s serving %q: fallback %q, want %q", tt.service, tt.env, got, tt.want)
		}
	}
	if p.Service("nope") != nil {
		t.Fatal("unknown service found")
	}
}

// TestInnerRoutes: an inner sidecar routes on the lane its Envoy verified,
// each route saying the hop's reason: a killed release's lanes go stable
// first, a weighted release splits nothing (the edge chose), a lane that
// did not verify goes stable without being passed on.
func TestInnerRoutes(t *testing.T) {
	p, err := Build(parse(t, `
lane: {key: 0123456789abcdef0123456789abcdef}
releases:
  - {name: old, env: gray, percent: 10, state: killed}
  - {name: split, env: gray, traffic_percent: 50}
services:
  - name: frontend
    environments: {stable: [127.0.0.1:9001], gray: [127.0.0.1:9002]}
    sidecar: {inbound_port: 10001, outbound_port: 10101, edge: true}
  - name: orders
    environments: {stable: [127.0.0.1:9011], gray: [127.0.0.1:9012]}
    sidecar: {inbound_port: 10002, outbound_port: 10102}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Service("frontend").InnerRoutes != nil {
		t.Fatal("an edge sidecar has inner routes")
	}
	if !reflect.DeepEqual(p.Killed, []string{"old"}) {
		t.Fatalf("killed %v", p.Killed)
	}
	stable := []Backend{{Env: config.Stable, StampEnv: true}}
	want := []Route{
		{Name: "killed:old", Match: Match{Kind: MatchRelease, Release: "old"}, Backends: stable, Reason: "killed", DropLane: true},
		{Name: "stable", Match: Match{Kind: MatchEnv, Env: "stable"}, Backends: []Backend{{Env: "stable"}}, Reason: "lane"},
		{Name: "gray", Match: Match{Kind: MatchEnv, Env: "gray"}, Backends: []Backend{{Env: "gray"}}, Reason: "lane"},
		{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}, Reason: "lane", Fallback: true},
		{Name: RouteLaneRefused, Match: Match{Kind: MatchLane}, Backends: stable, Reason: "lane-refused", DropLane: true},
		{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: []Backend{{Env: config.Stable}}, Reason: "lane-missing"},
	}
	if got := p.Service("orders").InnerRoutes; !reflect.DeepEqual(got, want) {
		t.Fatalf("inner routes\n got %+v\nwant %+v", got, want)
	}
	if def := p.Service("orders").Routes; len(def[len(def)-1].Backends) != 2 {
		t.Fatalf("the edge routes of orders (shared listener) lost the split: %+v", def)
	}
}

// TestKillBoundByFleetVersion: in Kubernetes mode the kill routes stop
// only lanes issued under the plan's version or before (a newer lane was
// issued where the kill is lifted); in file mode, where each node counts
// its own versions, every lane of the release; nothing killed, no bound.
func TestKillBoundByFleetVersion(t *testing.T) {
	const doc = `
lane: {key: 0123456789abcdef0123456789abcdef}
releases:
  - {name: old, env: gray, percent: 10, state: STATE}
services:
  - name: orders
    environments: {stable: [127.0.0.1:9011], gray: [127.0.0.1:9012]}
    sidecar: {inbound_port: 10002, outbound_port: 10102}
`
	build := func(state, version string, fleet bool) *Plan {
		cfg := parse(t, strings.Replace(doc, "STATE", state, 1))
		cfg.Version, cfg.FleetVersion = version, fleet
		p, err := Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	fleet := build("killed", "7", true)
	if fleet.KilledThrough == nil || *fleet.KilledThrough != 7 {
		t.Fatalf("killed through %v", fleet.KilledThrough)
	}
	if m := fleet.Service("orders").InnerRoutes[0].Match; m.Kind != MatchRelease || m.MaxVersion == nil || *m.MaxVersion != 7 {
		t.Fatalf("kill route match %+v", m)
	}
	for v, stops := range map[string]bool{"6": true, "7": true, "8": false, "": true, "x": true, " 8": false} {
		if got := fleet.KillStops(v); got != stops {
			t.Errorf("fleet version 7, lane version %q: stops %v, want %v", v, got, stops)
		}
	}
	for name, p := range map[string]*Plan{
		"file mode": build("killed", "7", false), "not an integer": build("killed", "x", true),
		"nothing killed": build("active", "7", true),
	} {
		if p.KilledThrough != nil || !p.KillStops("8") {
			t.Errorf("%s: killed through %v", name, p.KilledThrough)
		}
		if r := p.Service("orders").InnerRoutes[0]; r.Match.MaxVersion != nil {
			t.Errorf("%s: first inner route %+v", name, r)
		}
	}
}

// TestBuildRefuses feeds configs that skipped validation: the plan names
// the field no output could route.
func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Config
		want []string
	}{
		{"endpoint without a port", config.Config{Mesh: config.Mesh{ExtProcAddress: "127.0.0.1:18081"}, Services: []config.Service{
			{Name: "shop", Environments: map[string][]string{"stable": {"10.0.0.1"}}},
		}}, []string{`services[0] (shop).environments.stable[0]: "10.0.0.1" is not host:port`}},
		{"port out of range", config.Config{Mesh: config.Mesh{ExtProcAddress: "127.0.0.1:18081"}, Services: []config.Service{
			{Name: "shop", Environments: map[string][]string{"stable": {"10.0.0.1:80"}, "gray": {"10.0.0.2:70000"}}},
		}}, []string{`services[0] (shop).environments.gray[0]: "10.0.0.2:70000" is not host:port with a port in 1..65535`}},
		{"no stable", config.Config{Mesh: config.Mesh{ExtProcAddress: "127.0.0.1:18081"}, Services: []config.Service{
			{Name: "shop", Environments: map[string][]string{"gray": {"10.0.0.2:80"}}},
		}}, []string{"services[0] (shop).environments.stable: every service needs stable endpoints"}},
		{"bad ext_proc and collector addresses", config.Config{
			Mesh: config.Mesh{ExtProcAddress: "graymesh"}, Tracing: config.Tracing{OTLPEndpoint: "jaeger:0"},
		}, []string{`mesh.extproc_address: "graymesh" is not host:port`, "tracing.otlp_endpoint:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(&tt.cfg)
			if err == nil {
				t.Fatalf("built %+v", p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestAnonymousRoute: Envoy splits anonymous requests itself only when
// asked to, with a lane key, for an active traffic-weighted release, on a
// service that has its environment, and when no release has a rule a
// request without identity could match.
func TestAnonymousRoute(t *testing.T) {
	const base = `
mesh: {native_traffic_split: %s}
lane: {key: %s}
%s
services:
  - name: checkout
    environments:
      stable: [10.0.0.1:8080]
      canary: [10.0.0.2:8080]
  - name: search
    environments:
      stable: [10.0.1.1:8080]
`
	const key = "0123456789abcdef0123456789abcdef"
	weighted := "releases: [{name: c, env: canary, traffic_percent: 12.5%s}]"
	want := &Route{Name: RouteAnonymous, Match: Match{Kind: MatchAnonymous, Absent: []string{"authorization", "cookie", wire.HeaderStressMarker}},
		Backends: []Backend{{Env: config.Stable, Weight: 8750}, {Env: "canary", Weight: 1250}},
		Reason:   wire.ReasonTrafficEnvoy, Release: "c"}
	tests := []struct {
		name              string
		on, lane, release string
		want              *Route
	}{
		{"active weighted release", "true", key, fmt.Sprintf(weighted, ""), want},
		{"not asked for", "false", key, fmt.Sprintf(weighted, ""), nil},
		{"no lane key to hand out", "true", `""`, fmt.Sprintf(weighted, ""), nil},
		{"frozen: admits nobody new", "true", key, "membership: {enabled: true}\n" + fmt.Sprintf(weighted, ", state: frozen"), nil},
		{"killed", "true", key, fmt.Sprintf(weighted, ", state: killed"), nil},
		{"a header rule could match a keyless request", "true", key,
			"releases: [{name: c, env: canary, traffic_percent: 12.5}, {name: h, env: canary, headers: [{name: x-beta, exact: '1'}]}]", nil},
		{"a cidrs rule could match a keyless request", "true", key,
			"releases: [{name: c, env: canary, traffic_percent: 12.5}, {name: h, env: canary, cidrs: [10.0.0.0/8]}]", nil},
		{"membership header must be absent too", "true", key, "membership: {enabled: true}\n" + fmt.Sprintf(weighted, ""),
			&Route{Name: want.Name, Match: Match{Kind: MatchAnonymous, Absent: []string{"authorization", "cookie", strings.ToLower(wire.DefaultMembershipHeader), wire.HeaderStressMarker}},
				Backends: want.Backends, Reason: want.Reason, Release: want.Release}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(parse(t, fmt.Sprintf(base, tt.on, tt.lane, tt.release)))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Service("checkout").Anonymous; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("anonymous route %+v, want %+v", got, tt.want)
			}
			if got := p.Service("search").Anonymous; got != nil {
				t.Fatalf("search has no canary, yet an anonymous route %+v", got)
			}
			if p.SplitsNatively() != (tt.want != nil) {
				t.Fatalf("SplitsNatively %v", p.SplitsNatively())
			}
		})
	}
}

type fakeSigner struct{}

func (fakeSigner) Sign(env, release, version string, now time.Time) string {
	return fmt.Sprintf("%s.%s.%s.%d", env, release, version, now.Unix())
}

// TestSigned: each branch of an anonymous route carries the lane of its
// environment for the window signed for, the plan signed from is left as
// it was, and without a signer no anonymous route is left.
func TestSigned(t *testing.T) {
	p, err := Build(parse(t, `
mesh: {native_traffic_split: true}
lane: {key: 0123456789abcdef0123456789abcdef}
releases: [{name: c, env: canary, traffic_percent: 50}]
services:
  - name: checkout
    environments: {stable: [10.0.0.1:8080], canary: [10.0.0.2:8080]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Signed(time.Unix(100, 0)); s.Service("checkout").Anonymous != nil {
		t.Fatal("signed without a signer, yet an anonymous route")
	}
	p.Lane = &Lane{Signer: fakeSigner{}, Window: time.Second}
	s := p.Signed(time.Unix(100, 0))
	var lanes []string
	for _, b := range s.Service("checkout").Anonymous.Backends {
		lanes = append(lanes, b.Lane)
	}
	if want := []string{"stable.c..100", "canary.c..100"}; !reflect.DeepEqual(lanes, want) {
		t.Fatalf("lanes %v, want %v", lanes, want)
	}
	for _, b := range p.Service("checkout").Anonymous.Backends {
		if b.Lane != "" {
			t.Fatalf("signing changed the plan in force: %+v", b)
		}
	}
}

// TestEnvoyRoutesItself: what the edge's Envoy routes without graymesh —
// returning callers only with native_returning_callers, a lane key and no
// release deciding on more than the caller; anonymous requests only for an
// active traffic-weighted release with native_traffic_split.
func TestEnvoyRoutesItself(t *testing.T) {
	const base = `
lane: {key: plan-test-lane-key-0123456789abcdef}
membership: {enabled: true}
services:
  - {name: shop, environments: {stable: ["127.0.0.1:9001"], gray: ["127.0.0.1:9002"]}}
releases:
`
	for _, tt := range []struct {
		name, mesh, releases string
		returning            bool
		anonymousFor         string
	}{
		{"neither", "{}", "  - {name: r, env: gray, salt: s, traffic_percent: 10}\n", false, ""},
		{"both", "{native_returning_callers: true, native_traffic_split: true}", "  - {name: r, env: gray, salt: s, traffic_percent: 10}\n", true, "r"},
		{"frozen split", "{native_traffic_split: true}", "  - {name: r, env: gray, salt: s, traffic_percent: 10, state: frozen}\n", false, ""},
		{"header rules", "{native_returning_callers: true, native_traffic_split: true}", "  - {name: r, env: gray, salt: s, traffic_percent: 10, headers: [{name: x-beta, exact: \"1\"}]}\n", false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			returning, anonymousFor := EnvoyRoutesItself(parse(t, "mesh: "+tt.mesh+base+tt.releases))
			if returning != tt.returning || anonymousFor != tt.anonymousFor {
				t.Fatalf("returning %v, anonymous for %q; want %v, %q", returning, anonymousFor, tt.returning, tt.anonymousFor)
			}
		})
	}
}
