package gray

import (
	"fmt"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestTrafficSplit(t *testing.T) {
	engine := func(state string) *Engine {
		e, err := New(&config.Config{Version: "7", Releases: []config.Release{
			{Name: "named", Env: "gray", Salt: "a", Whitelist: []string{"alice"}},
			{Name: "split", Env: "canary", Salt: "b", TrafficPercent: 25, State: state},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := engine(config.StateActive)
	tests := []struct {
		name   string
		f      Facts
		env    string
		reason Reason
	}{
		{"a rule decides first", Facts{Subject: "alice", RequestID: "r1"}, "gray", ReasonWhitelist},
		{"a verified subject is not split", Facts{Subject: "bob", RequestID: "r1"}, config.Stable, ReasonNotSelected},
		{"no request id: the route default splits", Facts{}, "", ReasonNoIdentity},
		{"a forged token is split as anonymous", Facts{InvalidToken: true, RequestID: "r1"}, e.Decide(&Facts{RequestID: "r1"}).Env, ReasonTraffic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(&tt.f)
			if d.Env != tt.env || d.Reason != tt.reason {
				t.Fatalf("decision %+v, want %s by %s", d, tt.env, tt.reason)
			}
		})
	}
	// The split follows the weight and is the same for the same request id.
	gray := 0
	const n = 20000
	for i := 0; i < n; i++ {
		f := Facts{RequestID: fmt.Sprintf("req-%d", i)}
		d := e.Decide(&f)
		if d.Reason != ReasonTraffic || d.Release != "split" || d.Rule != "traffic_percent:25.00" {
			t.Fatalf("request %d: %+v", i, d)
		}
		if d != e.Decide(&f) {
			t.Fatalf("request %d decided twice differently", i)
		}
		if d.Env == "canary" {
			gray++
		}
	}
	if share := float64(gray) / n; share < 0.24 || share > 0.26 {
		t.Fatalf("canary share %.4f, want 0.25 ± 0.01", share)
	}
	for _, state := range []string{config.StateFrozen, config.StateKilled} {
		if d := engine(state).Decide(&Facts{RequestID: "r1"}); d.Env != "" || d.Reason != ReasonNoIdentity {
			t.Errorf("%s release split a request: %+v", state, d)
		}
	}
}

// TestDecideDoesNotAllocate guards the decision path against a request's
// Facts escaping to the heap (an indirect call on them does that).
func TestDecideDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, `
releases:
  - {name: shop-v2, env: gray, salt: s, whitelist: [alice], claims: [{claim: tier, in: [beta]}], cidrs: [10.0.0.0/8], headers: [{name: x-region, exact: hz}], percent: 30}
services:
  - {name: shop, environments: {stable: ["127.0.0.1:9001"], gray: ["127.0.0.1:9002"]}}
`)
	req := Request{Asserted: &Asserted{Subject: "bob"}, Headers: map[string]string{"x-region": "sh"}, Hop: Hop{Service: "shop"}}
	if o := p.Decide(req); o.Reason != ReasonPercent && o.Reason != ReasonNotSelected {
		t.Fatalf("decided by %s, want every rule tried", o.Reason)
	}
	if n := testing.AllocsPerRun(200, func() { _ = p.Decide(req) }); n != 0 {
		t.Fatalf("%.0f allocations per decision, want 0", n)
	}
}

// TestExplainEnvoySplit: with mesh.native_traffic_split, a request with
// no identity at all is explained as Envoy's own split (graymesh is not
// asked); one with a cookie, a token or a subject still goes to graymesh,
// which splits it as before.
func TestExplainEnvoySplit(t *testing.T) {
	p := mustCompile(t, `
mesh: {native_traffic_split: true}
lane: {key: graymesh-native-test-lane-key-0123456789}
identity: {device_cookie: gm_device}
releases:
  - {name: split, env: gray, salt: s, traffic_percent: 25}
services:
  - {name: shop, environments: {stable: ["127.0.0.1:9001"], gray: ["127.0.0.1:9002"]}}
`)
	for _, tt := range []struct {
		name   string
		r      Request
		reason Reason
	}{
		{"no identity at the edge", Request{RequestID: "r1"}, ReasonTrafficEnvoy},
		{"no identity at the shop's edge sidecar", Request{RequestID: "r1", Hop: Hop{Service: "shop"}}, ReasonTrafficEnvoy},
		{"any cookie goes to graymesh", Request{RequestID: "r1", Cookie: "session=1"}, ReasonTraffic},
		{"a device is bucketed by graymesh", Request{RequestID: "r1", Cookie: "gm_device=d1"}, ReasonNotSelected},
		{"an asserted subject", Request{RequestID: "r1", Asserted: &Asserted{Subject: "bob"}}, ReasonNotSelected},
		{"an inner hop follows the lane", Request{Hop: Hop{Inner: true, Service: "shop"}}, ReasonLaneMissing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ex := p.Explain(tt.r)
			if ex.Reason != tt.reason {
				t.Fatalf("explained %+v, want reason %s", ex, tt.reason)
			}
			if tt.reason == ReasonTrafficEnvoy && (ex.Release != "split" || ex.Env != "" || ex.Bucket != NoBucket) {
				t.Fatalf("Envoy's split explained as %+v", ex)
			}
		})
	}
}

// mustCompile parses yaml as a config file and compiles its policy.
func mustCompile(t *testing.T, yaml string) *Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
