package xds

import (
	"os"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// chainHCM is the HTTP connection manager of a filter chain.
func chainHCM(t *testing.T, c *listenerv3.FilterChain) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	if err := c.GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return &hcm
}

// stripsLane reports whether the chain removes the lane header on arrival.
func stripsLane(t *testing.T, hcm *hcmv3.HttpConnectionManager) bool {
	t.Helper()
	for _, ext := range hcm.GetEarlyHeaderMutationExtensions() {
		var strip earlymutationv3.HeaderMutation
		if err := ext.GetTypedConfig().UnmarshalTo(&strip); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strip.String(), wire.HeaderLane) {
			return true
		}
	}
	return false
}

func filterNames(hcm *hcmv3.HttpConnectionManager) []string {
	var out []string
	for _, f := range hcm.GetHttpFilters() {
		out = append(out, f.GetName())
	}
	return out
}

// TestLaneSourcesSplitTheSidecarListeners: with lane.mesh_cidrs, every
// listener a lane can enter a chain by (inner, outbound, fallback) takes
// it only on a connection from those ranges; from anywhere else (the
// default filter chain) the lane is removed on arrival and no lane check
// runs. The edge listener strips lanes whatever the source, as before.
func TestLaneSourcesSplitTheSidecarListeners(t *testing.T) {
	doc, err := os.ReadFile("testdata/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "mesh_cidrs: [127.0.0.1/32, 10.8.0.0/16]") {
		t.Fatal("testdata/mesh.yaml lacks the mesh_cidrs this test reads")
	}
	p := parsePlan(t, string(doc))
	for _, svc := range p.Sidecars() {
		res, err := BuildSidecar(p, svc)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Listeners {
			edgeInbound := svc.Sidecar.Edge && strings.HasPrefix(l.GetName(), "inbound|")
			def := l.GetDefaultFilterChain()
			if edgeInbound {
				if def != nil || l.GetFilterChains()[0].GetFilterChainMatch() != nil {
					t.Errorf("%s: the edge listener is split by source", l.GetName())
				}
				continue
			}
			match := l.GetFilterChains()[0].GetFilterChainMatch().GetSourcePrefixRanges()
			if len(match) != 2 || match[0].GetAddressPrefix() != "127.0.0.1" || match[0].GetPrefixLen().GetValue() != 32 ||
				match[1].GetAddressPrefix() != "10.8.0.0" || match[1].GetPrefixLen().GetValue() != 16 {
				t.Errorf("%s: mesh chain matches %v", l.GetName(), match)
			}
			if def == nil {
				t.Fatalf("%s: no chain for connections from outside the mesh", l.GetName())
			}
			outside := chainHCM(t, def)
			if !stripsLane(t, outside) || slices.Contains(filterNames(outside), LaneFilterName) {
				t.Errorf("%s: outside the mesh the chain strips the lane %v, filters %v", l.GetName(), stripsLane(t, outside), filterNames(outside))
			}
			inMesh := chainHCM(t, l.GetFilterChains()[0])
			if stripsLane(t, inMesh) {
				t.Errorf("%s: the mesh chain strips the lane", l.GetName())
			}
			if inner := strings.HasPrefix(l.GetName(), "inbound|"); inner != slices.Contains(filterNames(inMesh), LaneFilterName) {
				t.Errorf("%s: mesh chain filters %v", l.GetName(), filterNames(inMesh))
			}
		}
	}
}
