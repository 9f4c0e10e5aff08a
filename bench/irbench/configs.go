// Package irbench counts the CPU instructions an inner hop's Envoy spends
// per request, under valgrind's callgrind, for each way an inner hop can
// route on the edge's decision: the lane verified in Envoy (graymesh's
// inner sidecars), a plain header nobody checks (the floor), the lane
// pulled out of W3C baggage first, and the ext_proc call every inner hop
// made before — and the edge's ext_proc server: graymesh deciding from
// HS256 tokens, cached and not, against the repository's naive no-op
// server behind the same listener — and the edge routing returning
// callers itself (a returning caller with its proof, an anonymous request
// and a first-seen caller, and their mix). Instruction counts do not depend on
// the machine's other load, which wall-clock figures on a shared two-core
// machine do.
package irbench

import (
	"fmt"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/xds"
)

// Config is one way an inner hop's Envoy routes.
type Config struct {
	Name string
	What string
	// graymesh is the ext_proc server the configuration asks (whose
	// instructions are counted too): graymesh current or before, the
	// naive no-op server, or none.
	graymesh graymeshBuild
	// callers: every request carries the bearer token of one of
	// Options.Callers callers, cycled, and browser-like headers.
	callers bool
	// noCache: graymesh runs with its token cache off.
	noCache bool
	// stable: the request must be served by stable (nothing decides gray).
	stable bool
	// edge: the edge sidecar's inbound listener, not the inner one.
	edge bool
	// freshLanes: every request carries a lane Envoy has not seen.
	freshLanes bool
	// beforeLane: the request carries a lane in the format of before this
	// change.
	beforeLane bool
	// longLane: the request carries the lane as it was before issue 27
	// shortened it (longlane.go), the same one for a window as Sign's.
	longLane bool
	// build changes the inbound listener's filters and routes (nil: as
	// graymesh pushes them).
	build func(s *sidecars, hcm *hcmv3.HttpConnectionManager) error
	// chains changes the listener's filter chains once build's HCM is in
	// them (nil: the one chain).
	chains func(l *listenerv3.Listener)
	// headers are what the client sends, given the request's lane.
	headers func(lane string) map[string]string
	// h2: the client speaks HTTP/2 without TLS (prior knowledge), as a
	// caller's sidecar may, instead of HTTP/1.1.
	h2 bool
	// anonymous: the edge as pushed with mesh.native_traffic_split for a
	// release splitting anonymous traffic in half; either environment
	// may serve.
	anonymous bool
	// returning: the edge as pushed with mesh.native_returning_callers
	// too (and native_traffic_split), for a release admitting every
	// identified caller and splitting anonymous traffic in half; the
	// callers' tokens are HS256.
	returning bool
	// proofs: every request is a returning caller's — one of
	// Options.Callers callers, cycled — with its HS256 token and the
	// proof graymesh handed it in the warm-up.
	proofs bool
	// firstSeen: every request is a caller graymesh has never seen, with
	// a new HS256 token and no proof; graymesh hands it a proof.
	firstSeen bool
	// noExtProc: the edge listener without its ext_proc filter, whose
	// streams are then not counted (attribution).
	noExtProc bool
}

// notAsked reports whether no request of c may reach graymesh: Envoy
// routes each itself (Envoy's ext_proc stream count is checked).
func (c Config) notAsked() bool { return c.edge && !c.noExtProc && (c.anonymous || c.proofs) }

// browserHeaders are what a browser sends besides the bearer token (the
// harness adds it): what Envoy forwards to the ext_proc server unless told
// otherwise.
func browserHeaders(string) map[string]string {
	return map[string]string{
		"user-agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"accept":          "application/json, text/plain, */*",
		"accept-language": "en-US,en;q=0.9,zh-CN;q=0.8",
		"cookie":          "session=s0000002a; theme=dark",
		"referer":         "https://shop.example.com/cart",
	}
}

// graymeshBuild says which graymesh answers a configuration's ext_proc
// calls.
type graymeshBuild int

const (
	graymeshNone graymeshBuild = iota
	graymeshCurrent
	graymeshBefore
	graymeshNoop
)

// betaHeader admits a request to gray at the bench mesh's edge.
const betaHeader = "x-beta"

// sidecars are the resources graymesh builds for the bench mesh: the
// inner sidecar (orders) whose inbound listener is measured, and the edge
// sidecar (frontend), whose ext_proc filter and routes the old inner hop
// used.
type sidecars struct {
	inner, edge *xds.Resources
}

func newSidecars(p *plan.Plan) (*sidecars, error) {
	inner, err := xds.BuildSidecar(p, p.Service(innerService))
	if err != nil {
		return nil, err
	}
	edge, err := xds.BuildSidecar(p, p.Service(edgeService))
	if err != nil {
		return nil, err
	}
	return &sidecars{inner: inner, edge: edge}, nil
}

// native inlines the lane check's config (an ECDS resource in the mesh)
// into its filter.
func (s *sidecars) native(hcm *hcmv3.HttpConnectionManager) error {
	for _, f := range hcm.HttpFilters {
		if f.GetName() == xds.LaneFilterName {
			if len(s.inner.Extensions) != 1 {
				return fmt.Errorf("the inner sidecar has %d extension configs, want the lane check", len(s.inner.Extensions))
			}
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: s.inner.Extensions[0].GetTypedConfig()}
			return nil
		}
	}
	return fmt.Errorf("the inner listener has no %s filter", xds.LaneFilterName)
}

// plainHeader drops the lane check and the strip: the client's x-gray-env
// routes.
func (s *sidecars) plainHeader(hcm *hcmv3.HttpConnectionManager) error {
	hcm.EarlyHeaderMutationExtensions = nil
	hcm.HttpFilters = hcm.HttpFilters[len(hcm.HttpFilters)-1:]
	return nil
}

// laneFromBaggage copies the graymesh-lane member of the baggage header
// into the lane header, wherever the member stands in the list.
const laneFromBaggage = `
function envoy_on_request(h)
  local b = h:headers():get("baggage")
  if b == nil then return end
  local lane = string.match("," .. b .. ",", ",%s*graymesh%-lane%s*=%s*([^,;%s]+)")
  if lane ~= nil then h:headers():replace("` + wire.HeaderLane + `", lane) end
end
`

// baggage is native behind a Lua filter that extracts the lane.
func (s *sidecars) baggage(hcm *hcmv3.HttpConnectionManager) error {
	if err := s.native(hcm); err != nil {
		return err
	}
	lua, err := anypb.New(&luav3.Lua{DefaultSourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: laneFromBaggage}}})
	if err != nil {
		return err
	}
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: lua}}}, hcm.HttpFilters...)
	return nil
}

// extProc is the inner listener as graymesh pushed it before this change:
// the x-gray-* strip, graymesh's ext_proc filter asking as an inner hop,
// and routes on the x-gray-env graymesh sets (an edge sidecar's routes,
// which inner sidecars used then).
func (s *sidecars) extProc(hcm *hcmv3.HttpConnectionManager) error {
	edgeHCM, err := inboundHCM(s.edge.Listeners[0])
	if err != nil {
		return err
	}
	filter := edgeHCM.HttpFilters[0]
	ep := &extprocv3.ExternalProcessor{}
	if filter.GetName() != wire.ExtProcFilterName || filter.GetTypedConfig().UnmarshalTo(ep) != nil {
		return fmt.Errorf("the edge listener's first filter is %s, not ext_proc", filter.GetName())
	}
	ep.GrpcService.InitialMetadata = []*corev3.HeaderValue{{Key: wire.MetadataHop, Value: wire.HopInner}, {Key: wire.MetadataService, Value: innerService}}
	// The filter of before forwarded every header (the lane travelled in
	// baggage) and the client address.
	ep.ForwardRules, ep.RequestAttributes = nil, []string{wire.SourceAddressAttribute}
	a, err := anypb.New(ep)
	if err != nil {
		return err
	}
	router := hcm.HttpFilters[len(hcm.HttpFilters)-1]
	hcm.HttpFilters = []*hcmv3.HttpFilter{{Name: wire.ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, router}
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: s.edge.Routes[0]}
	return nil
}

// inlineDiscovered puts into each of hcm's filters whose config comes over
// ECDS in the mesh (an edge's proof check) that config, from exts: a
// static bootstrap has no ADS.
func inlineDiscovered(hcm *hcmv3.HttpConnectionManager, exts []*corev3.TypedExtensionConfig) error {
	for _, f := range hcm.HttpFilters {
		if f.GetConfigDiscovery() == nil {
			continue
		}
		i := slices.IndexFunc(exts, func(e *corev3.TypedExtensionConfig) bool { return e.GetName() == f.GetName() })
		if i < 0 {
			return fmt.Errorf("filter %s: no extension config of that name", f.GetName())
		}
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: exts[i].GetTypedConfig()}
	}
	return nil
}

// inboundHCM is the HTTP connection manager of a listener.
func inboundHCM(l *listenerv3.Listener) (*hcmv3.HttpConnectionManager, error) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return nil, err
	}
	return hcm, nil
}

// bootstrap renders a static Envoy bootstrap for c: the inner (or edge)
// sidecar's inbound listener with its routes inlined (RDS in the mesh),
// changed by c, and the clusters it needs.
func (s *sidecars) bootstrap(c Config, adminPort int) ([]byte, error) {
	side := s.inner
	if c.edge {
		side = s.edge
	}
	l, _ := proto.Clone(side.Listeners[0]).(*listenerv3.Listener)
	hcm, err := inboundHCM(l)
	if err != nil {
		return nil, err
	}
	// A copy: a configuration's build may change the routes.
	routes, _ := proto.Clone(side.Routes[0]).(*routev3.RouteConfiguration)
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routes}
	if c.build != nil {
		if err := c.build(s, hcm); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	if c.edge {
		if err := inlineDiscovered(hcm, s.edge.Extensions); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny}
	if c.chains != nil {
		c.chains(l)
	}
	clusters := map[string]*clusterv3.Cluster{}
	var ordered []*clusterv3.Cluster
	for _, c := range append(append([]*clusterv3.Cluster{}, s.inner.Clusters...), s.edge.Clusters...) {
		if _, dup := clusters[c.GetName()]; !dup && !strings.HasPrefix(c.GetName(), "inbound|") {
			clusters[c.GetName()] = c
			ordered = append(ordered, c)
		}
	}
	boot := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: "irbench-" + c.Name, Cluster: innerService},
		Admin: &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(adminPort)},
		}}}},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: []*listenerv3.Listener{l}, Clusters: ordered},
	}
	if err := boot.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return protojson.MarshalOptions{Indent: "  "}.Marshal(boot)
}
