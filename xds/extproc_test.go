package xds

import (
	"slices"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// edgeExtProc is the ext_proc filter of the shared edge listener graymesh
// builds for a config document.
func edgeExtProc(t *testing.T, doc string) *extprocv3.ExternalProcessor {
	t.Helper()
	res, err := Build(parsePlan(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := res.Listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == wire.ExtProcFilterName {
			ep := &extprocv3.ExternalProcessor{}
			if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
				t.Fatal(err)
			}
			return ep
		}
	}
	t.Fatal("the edge listener has no ext_proc filter")
	return nil
}

// TestExtProcSendsWhatTheDecisionReads: Envoy forwards graymesh the
// headers its decision reads — the configured header matchers' and the
// membership header too — and every x-gray-* header (graymesh removes
// them); the client address only when a release has a cidrs rule.
func TestExtProcSendsWhatTheDecisionReads(t *testing.T) {
	const services = "services: [{name: shop, environments: {stable: [\"127.0.0.1:9001\"], gray: [\"127.0.0.1:9002\"]}}]\n"
	plain := edgeExtProc(t, "releases: [{name: r, env: gray, headers: [{name: x-beta, exact: \"1\"}]}]\n"+services)
	if len(plain.GetRequestAttributes()) != 0 {
		t.Errorf("request_attributes %v without a cidrs rule", plain.GetRequestAttributes())
	}
	var exact, prefix []string
	for _, m := range plain.GetForwardRules().GetAllowedHeaders().GetPatterns() {
		if e := m.GetExact(); e != "" {
			exact = append(exact, e)
		}
		if p := m.GetPrefix(); p != "" {
			prefix = append(prefix, p)
		}
	}
	if want := []string{"authorization", "cookie", "x-beta", wire.HeaderLane, wire.HeaderStressMarker, wire.HeaderRequestID}; !slices.Equal(exact, want) {
		t.Errorf("allowed headers %v, want %v", exact, want)
	}
	if !slices.Equal(prefix, []string{wire.HeaderPrefix}) {
		t.Errorf("allowed prefixes %v, want %s", prefix, wire.HeaderPrefix)
	}
	if len(plain.GetForwardRules().GetDisallowedHeaders().GetPatterns()) != 0 {
		t.Error("disallowed_headers set")
	}

	cidr := edgeExtProc(t, "lane: {key: k-0123456789abcdef-0123456789abcdef}\nmembership: {enabled: true, header: x-member}\n"+
		"releases: [{name: r, env: gray, cidrs: [10.0.0.0/8]}]\n"+services)
	if !slices.Equal(cidr.GetRequestAttributes(), []string{wire.SourceAddressAttribute}) {
		t.Errorf("request_attributes %v with a cidrs rule, want %s", cidr.GetRequestAttributes(), wire.SourceAddressAttribute)
	}
	found := false
	for _, m := range cidr.GetForwardRules().GetAllowedHeaders().GetPatterns() {
		found = found || m.GetExact() == "x-member"
	}
	if !found {
		t.Error("the membership header is not forwarded with membership on")
	}
}
