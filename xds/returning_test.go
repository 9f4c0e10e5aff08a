package xds

import (
	"os"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	skipactionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// returningPlan is testdata/native.yaml with native_returning_callers and
// an HS256 issuer, in force at version 7.
func returningPlan(t *testing.T, edits ...func(string) string) *plan.Plan {
	t.Helper()
	doc, err := os.ReadFile("testdata/native.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const identity = "identity: {jwt: {issuer: idp, keys: [{kid: hs, alg: HS256, secret: an-hmac-secret-0123456789abcdef-0123}]}}\n"
	cfg := strings.Replace(string(doc), "  native_traffic_split: true\n", "  native_traffic_split: true\n  native_returning_callers: true\n", 1) + identity
	for _, edit := range edits {
		cfg = edit(cfg)
	}
	return parsePlanAt(t, cfg, "7", false)
}

// TestNoProofRoutesWithoutLanesOrWithHeaderRules: without a window's
// lanes (an unsigned plan), or with a release that decides on request
// headers, an edge has no proof routes, hands out no proofs and asks
// graymesh with a plain ext_proc filter first.
func TestNoProofRoutesWithoutLanesOrWithHeaderRules(t *testing.T) {
	u := returningPlan(t)
	unsigned, err := BuildSidecar(u, u.Service("frontend"))
	if err != nil {
		t.Fatal(err)
	}
	rules := returningPlan(t, func(cfg string) string {
		return strings.Replace(cfg, "traffic_percent: 25", "traffic_percent: 25\n    headers: [{name: x-beta, exact: \"1\"}]", 1)
	}).Signed(goldenNow)
	if rules.Callers != nil {
		t.Fatal("proofs route with a release that has header rules")
	}
	withRules, err := BuildSidecar(rules, rules.Service("frontend"))
	if err != nil {
		t.Fatal(err)
	}
	for name, res := range map[string]*Resources{"unsigned": unsigned, "header rules": withRules} {
		for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
			if strings.Contains(r.GetName(), plan.RouteProofPrefix) || handsProofFromMetadata(r) {
				t.Fatalf("%s: route %s routes or hands out proofs", name, r.GetName())
			}
		}
		if extProcBuiltByMatcher(t, chainHCM(t, res.Listeners[0].GetFilterChains()[0])) {
			t.Fatalf("%s: ext_proc behind a matcher without proof routes", name)
		}
		if f := filterNames(chainHCM(t, res.Listeners[0].GetFilterChains()[0]))[0]; f != wire.ExtProcFilterName {
			t.Fatalf("%s: first filter %s", name, f)
		}
	}
}

// handsProofFromMetadata reports whether r sets the response's proof
// header from graymesh's answer, and only when it has one.
func handsProofFromMetadata(r *routev3.Route) bool {
	for _, h := range r.GetResponseHeadersToAdd() {
		if h.GetHeader().GetKey() == wire.HeaderProof {
			return h.GetHeader().GetValue() == "%DYNAMIC_METADATA(graymesh:proof)%" && !h.GetKeepEmptyValue()
		}
	}
	return false
}

// handsProofsWhereGraymeshAnswers checks that exactly the routes that ask
// graymesh (ext_proc not turned off) copy its proof into the response.
func handsProofsWhereGraymeshAnswers(t *testing.T, name string, routes []*routev3.Route) {
	t.Helper()
	asking := 0
	for _, r := range routes {
		_, off := r.GetTypedPerFilterConfig()[wire.ExtProcFilterName]
		if !off {
			asking++
		}
		if handsProofFromMetadata(r) == off {
			t.Fatalf("%s: route %s (ext_proc off: %v) hands the proof: %v", name, r.GetName(), off, !off)
		}
	}
	if asking == 0 {
		t.Fatalf("%s: no route asks graymesh", name)
	}
}

// anonymousBuildsNoProofFilters checks that the anonymous route, on which
// a request arrives and stays, has Envoy build neither ext_proc nor the
// proof filters.
func anonymousBuildsNoProofFilters(t *testing.T, name string, routes []*routev3.Route) {
	t.Helper()
	for _, r := range routes {
		if r.GetName() != "frontend/"+plan.RouteAnonymous {
			continue
		}
		for _, f := range []string{wire.ExtProcFilterName, proofFilterName, proofBoundFilterName} {
			var fc routev3.FilterConfig
			if err := r.GetTypedPerFilterConfig()[f].UnmarshalTo(&fc); err != nil || !fc.GetDisabled() {
				t.Fatalf("%s: the anonymous route builds %s (%v)", name, f, err)
			}
		}
		return
	}
	t.Fatalf("%s: no anonymous route", name)
}

// proofFiltersBuiltOnlyWithAProof checks that a request with a proof
// and a token arrives on a copy of the catch-all route right after the
// proof routes (no environment set yet), which builds the proof
// filters, and that the catch-all, where any other request graymesh
// decides arrives, builds neither.
func proofFiltersBuiltOnlyWithAProof(t *testing.T, name string, routes []*routev3.Route) {
	t.Helper()
	withProof, last := routes[3], routes[len(routes)-1]
	if last.GetName() != "frontend/"+plan.RouteDefault || withProof.GetName() != last.GetName()+"-with-proof" {
		t.Fatalf("%s: routes %s … %s", name, withProof.GetName(), last.GetName())
	}
	if !proto.Equal(withProof.GetRoute(), last.GetRoute()) || !proto.Equal(withProof.GetResponseHeadersToAdd()[0], last.GetResponseHeadersToAdd()[0]) {
		t.Fatalf("%s: %s routes otherwise than %s", name, withProof.GetName(), last.GetName())
	}
	m := withProof.GetMatch().GetHeaders()
	if len(m) != 3 || m[0].GetName() != wire.HeaderProof || !m[0].GetPresentMatch() || m[0].GetInvertMatch() ||
		m[1].GetName() != "authorization" || !m[1].GetPresentMatch() || m[1].GetInvertMatch() ||
		m[2].GetName() != wire.HeaderEnv || !m[2].GetPresentMatch() || !m[2].GetInvertMatch() {
		t.Fatalf("%s: %s matches %v, want %s and authorization, and no %s", name, withProof.GetName(), m, wire.HeaderProof, wire.HeaderEnv)
	}
	for _, f := range []string{proofFilterName, proofBoundFilterName} {
		var fc routev3.FilterConfig
		if err := last.GetTypedPerFilterConfig()[f].UnmarshalTo(&fc); err != nil || !fc.GetDisabled() {
			t.Fatalf("%s: a request without a proof has Envoy build %s (%v)", name, f, err)
		}
		if _, set := withProof.GetTypedPerFilterConfig()[f]; set {
			t.Fatalf("%s: a request with a proof arrives where %s is not built", name, f)
		}
	}
}

// proofCheck is res's proof check: the config of its listener's first
// filter, which Envoy discovers over ADS (ECDS).
func proofCheck(t *testing.T, res *Resources) *jwtauthnv3.JwtAuthentication {
	t.Helper()
	first := chainHCM(t, res.Listeners[0].GetFilterChains()[0]).GetHttpFilters()[0]
	if first.GetName() != proofFilterName || first.GetConfigDiscovery() == nil {
		t.Fatalf("first filter %s is not the discovered proof check", first.GetName())
	}
	for _, e := range res.Extensions {
		if e.GetName() == proofFilterName {
			var check jwtauthnv3.JwtAuthentication
			if err := e.GetTypedConfig().UnmarshalTo(&check); err != nil {
				t.Fatal(err)
			}
			return &check
		}
	}
	t.Fatalf("no extension config %s in %v", proofFilterName, res.Extensions)
	return nil
}

// extProcBuiltByMatcher reports whether hcm's ext_proc filter is the
// graymesh ext_proc config in a composite filter that a matcher builds on
// no match (returning.go's builtOnlyWhereAsked), rather than the filter
// itself.
func extProcBuiltByMatcher(t *testing.T, hcm *hcmv3.HttpConnectionManager) bool {
	t.Helper()
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() != wire.ExtProcFilterName {
			continue
		}
		var wrapped matchingv3.ExtensionWithMatcher
		if f.GetTypedConfig().UnmarshalTo(&wrapped) != nil {
			return false
		}
		var execute compositev3.ExecuteFilterAction
		if err := wrapped.GetXdsMatcher().GetOnNoMatch().GetAction().GetTypedConfig().UnmarshalTo(&execute); err != nil {
			t.Fatalf("the matcher's action: %v", err)
		}
		var ep extprocv3.ExternalProcessor
		if err := execute.GetTypedConfig().GetTypedConfig().UnmarshalTo(&ep); err != nil || !wrapped.GetExtensionConfig().GetTypedConfig().MessageIs(&compositev3.Composite{}) {
			t.Fatalf("the built filter is not ext_proc in a composite: %v", err)
		}
		return true
	}
	return false
}

// TestProofRoutesFirstAtTheEdge: the edges check a proof with two
// filters before ext_proc and route a bound proof of version 7 first,
// without building ext_proc, setting the decision and the window's lane;
// the routes that ask graymesh copy its proof into the response; inner
// sidecars check no proof.
func TestProofRoutesFirstAtTheEdge(t *testing.T) {
	p := returningPlan(t).Signed(goldenNow)
	shared, edge, inner := buildEdgesAndInner(t, p)
	for name, res := range map[string]*Resources{"shared": shared, "edge": edge} {
		if err := res.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hcm := chainHCM(t, res.Listeners[0].GetFilterChains()[0])
		if got, want := strings.Join(filterNames(hcm), " "), "graymesh.proof graymesh.proof_bound "+wire.ExtProcFilterName+" envoy.filters.http.router"; got != want {
			t.Fatalf("%s: filters %s, want %s", name, got, want)
		}
		if check := proofCheck(t, res); check.GetProviders()[proofProvider].GetIssuer() != wire.ProofIssuer {
			t.Fatalf("%s: proof check %v", name, check)
		}
		if !extProcBuiltByMatcher(t, hcm) {
			t.Fatalf("%s: ext_proc is built for every request", name)
		}
		routes := res.Routes[0].GetVirtualHosts()[0].GetRoutes()
		handsProofsWhereGraymeshAnswers(t, name, routes)
		anonymousBuildsNoProofFilters(t, name, routes)
		proofFiltersBuiltOnlyWithAProof(t, name, routes)
		var names []string
		for _, r := range routes[:3] {
			names = append(names, strings.TrimPrefix(r.GetName(), "frontend/"))
			var skip matchingv3.ExtensionWithMatcherPerRoute
			if err := r.GetTypedPerFilterConfig()[wire.ExtProcFilterName].UnmarshalTo(&skip); err != nil ||
				!skip.GetXdsMatcher().GetOnNoMatch().GetAction().GetTypedConfig().MessageIs(&skipactionv3.SkipFilter{}) {
				t.Fatalf("%s: %s builds ext_proc (%v)", name, r.GetName(), err)
			}
			if got := strings.Join(r.GetRequestHeadersToRemove(), " "); got != wire.HeaderProofToken+" "+wire.HeaderProofDecision+" "+wire.HeaderProofBound {
				t.Fatalf("%s: %s passes the proof check's headers to the service (removes %q)", name, r.GetName(), got)
			}
			headers := map[string]string{}
			for _, h := range r.GetRequestHeadersToAdd() {
				headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			matched := map[string]string{}
			for _, h := range r.GetMatch().GetHeaders() {
				matched[h.GetName()] = h.GetStringMatch().GetExact()
			}
			if matched[wire.HeaderProofDecision] != wire.ProofDecision(p.ProofVersion, headers[wire.HeaderEnv], headers[wire.HeaderRelease]) || !strings.HasPrefix(p.ProofVersion, "7-") || matched[wire.HeaderProofBound] != "true" {
				t.Fatalf("%s: %s matches %v, want proof version %s", name, r.GetName(), matched, p.ProofVersion)
			}
			l, err := p.Lane.Signer.(*lane.Signer).Verify(headers[wire.HeaderLane], goldenNow)
			if err != nil || l.Env != headers[wire.HeaderEnv] || l.Release != headers[wire.HeaderRelease] || l.Version != "7" || headers[wire.HeaderReason] != wire.ReasonProof {
				t.Fatalf("%s: %s sets %v (lane %+v, %v)", name, r.GetName(), headers, l, err)
			}
		}
		if got := strings.Join(names, " "); got != "proof:stable: proof:stable:shop-split proof:gray:shop-split" {
			t.Fatalf("%s: first routes %s", name, got)
		}
	}
	for _, f := range filterNames(chainHCM(t, inner.Listeners[0].GetFilterChains()[0])) {
		if strings.HasPrefix(f, "graymesh.proof") {
			t.Fatalf("an inner sidecar checks proofs (%s)", f)
		}
	}
}

// TestProofCallerHashOnlyForTheAnalysis: the proof check copies the caller
// hash to a header only when Envoy streams its access log to the analysis,
// which reads it; otherwise each returning request would pay for a header
// nobody reads.
func TestProofCallerHashOnlyForTheAnalysis(t *testing.T) {
	withAnalysis := func(cfg string) string {
		return strings.Replace(cfg, "    traffic_percent: 25\n", "    traffic_percent: 25\n    analysis: {interval: 10s}\n", 1)
	}
	for name, tt := range map[string]struct {
		p    *plan.Plan
		want bool
	}{
		"no analysis": {returningPlan(t).Signed(goldenNow), false},
		"analysis":    {returningPlan(t, withAnalysis).Signed(goldenNow), true},
	} {
		if tt.p.Mesh.AccessLog != tt.want {
			t.Fatalf("%s: access log %v", name, tt.p.Mesh.AccessLog)
		}
		res, err := BuildSidecar(tt.p, tt.p.Service("frontend"))
		if err != nil {
			t.Fatal(err)
		}
		check := proofCheck(t, res)
		copied := false
		for _, c := range check.GetProviders()[proofProvider].GetClaimToHeaders() {
			copied = copied || c.GetHeaderName() == wire.HeaderProofCallerHash
		}
		if copied != tt.want {
			t.Fatalf("%s: caller hash copied %v, want %v", name, copied, tt.want)
		}
	}
}

// TestProofKeysChangeWithoutReplacingTheEdgeListener: a lane key rotation
// or a new caller_proof_ttl changes only the proof check's extension
// config (ECDS), not the edge listener, which Envoy would replace and
// drain.
func TestProofKeysChangeWithoutReplacingTheEdgeListener(t *testing.T) {
	build := func(edits ...func(string) string) *Resources {
		p := returningPlan(t, edits...).Signed(goldenNow)
		res, err := BuildSidecar(p, p.Service("frontend"))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := build()
	for name, edit := range map[string]func(string) string{
		"key rotation": func(cfg string) string {
			return strings.Replace(cfg, "  key: graymesh-native-test-lane-key-0123456789\n", "  key: graymesh-native-test-rotated-key-0123456789\n  verify_keys: [graymesh-native-test-lane-key-0123456789]\n", 1)
		},
		"proof ttl": func(cfg string) string {
			return strings.Replace(cfg, "  native_returning_callers: true\n", "  native_returning_callers: true\n  caller_proof_ttl: 2m\n", 1)
		},
	} {
		after := build(edit)
		if !proto.Equal(before.Listeners[0], after.Listeners[0]) {
			t.Errorf("%s: the edge listener changed", name)
		}
		if proto.Equal(proofCheck(t, before), proofCheck(t, after)) {
			t.Errorf("%s: the proof check did not change", name)
		}
	}
}
