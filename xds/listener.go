package xds

import (
	"net/netip"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

type listenerSpec struct {
	name                  string
	address               plan.Endpoint
	routeName, statPrefix string
	// traceName is the service name of the spans this listener reports,
	// operation their name (Envoy's format specifiers apply).
	traceName, operation string
	// extProc, when set, asks graymesh about every request.
	extProc *extprocv3.ExternalProcessor
	// proof, at an edge routing returning callers itself, are the filters
	// that check a caller's proof (returning.go), before ext_proc.
	proof []*hcmv3.HttpFilter
	// lane has Envoy verify the lane itself (inner listeners), configured
	// by the extension config of that name.
	lane bool
	kind listenerKind
	// laneSources, when set, are the only ranges this sidecar listener
	// takes a lane from (plan.Mesh.LaneSources).
	laneSources []netip.Prefix
	// outsideMesh builds the filter chain for connections from outside
	// laneSources: no lane check, and the lane removed on arrival.
	outsideMesh bool
}

// listenerKind is what a listener is for.
type listenerKind int

const (
	// inbound listeners take requests from outside the mesh, at its edge:
	// they strip client-supplied graymesh headers and any lane, and
	// graymesh decides.
	inbound listenerKind = iota
	// inner listeners take requests from other services of the mesh: they
	// strip client-supplied graymesh headers and route on the lane their
	// Envoy verifies, without asking graymesh.
	inner
	// outbound listeners route the service's own calls to its peers;
	// they neither strip nor decide.
	outbound
	// fallback listeners serve stable to requests retried from a gray
	// cluster; they neither strip nor decide, keeping the lane.
	fallback
)

func listener(spec listenerSpec, m plan.Mesh) (*listenerv3.Listener, error) {
	chain, err := filterChain(spec, m)
	if err != nil {
		return nil, err
	}
	// The direction makes Envoy report an outbound listener's span as
	// the client side of the call (span kind client), the others as
	// servers.
	direction := corev3.TrafficDirection_INBOUND
	if spec.kind == outbound {
		direction = corev3.TrafficDirection_OUTBOUND
	}
	l := &listenerv3.Listener{
		Name:             spec.name,
		Address:          socketAddress(spec.address),
		TrafficDirection: direction,
		FilterChains:     []*listenerv3.FilterChain{chain},
	}
	if len(spec.laneSources) > 0 {
		// Envoy picks a filter chain once per connection, by the address
		// the connection comes from (not X-Forwarded-For): a connection
		// from the mesh gets the chain that honours lanes, any other the
		// default chain, which removes the lane before any filter runs.
		// Nothing is added to a request's path.
		outside := spec
		outside.lane, outside.outsideMesh = false, true
		// Its own stat prefix counts what reached the listener from
		// outside the mesh (http.<prefix>_outside_mesh.downstream_rq_total).
		outside.statPrefix += "_outside_mesh"
		def, err := filterChain(outside, m)
		if err != nil {
			return nil, err
		}
		chain.Name, def.Name = "mesh", "outside-mesh"
		chain.FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: cidrRanges(spec.laneSources)}
		l.DefaultFilterChain = def
	}
	return l, nil
}

// cidrRanges are prefixes as Envoy's CIDR ranges.
func cidrRanges(prefixes []netip.Prefix) []*corev3.CidrRange {
	out := make([]*corev3.CidrRange, 0, len(prefixes))
	for _, p := range prefixes {
		out = append(out, &corev3.CidrRange{AddressPrefix: p.Masked().Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))})
	}
	return out
}

// filterChain is the HTTP connection manager spec describes, as the
// listener's filter chain.
func filterChain(spec listenerSpec, m plan.Mesh) (*listenerv3.FilterChain, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: spec.statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: spec.routeName,
			ConfigSource:    adsSource(),
		}},
	}
	if spec.kind == inbound || spec.kind == inner || spec.outsideMesh {
		strip, err := stripClientHeaders(spec.kind == inbound || spec.outsideMesh)
		if err != nil {
			return nil, err
		}
		// Whoever calls this listener does not get to say which
		// environment serves it: X-Forwarded-For is not trusted, and
		// every x-gray-* header is removed before any filter runs, so a
		// spoofed x-gray-env cannot route even when ext_proc is down and
		// the filter fails open.
		hcm.UseRemoteAddress = wrapperspb.Bool(true)
		hcm.EarlyHeaderMutationExtensions = []*corev3.TypedExtensionConfig{strip}
	}
	if m.AccessLog && (spec.kind == inbound || spec.kind == inner) {
		// Listeners that route to environments report what they served;
		// outbound and fallback listeners would count a request twice.
		al, err := accessLog()
		if err != nil {
			return nil, err
		}
		hcm.AccessLog = append(hcm.AccessLog, al)
	}
	if spec.lane {
		hcm.HttpFilters = append(hcm.HttpFilters, laneFilter())
	}
	hcm.HttpFilters = append(hcm.HttpFilters, spec.proof...)
	if spec.extProc != nil {
		extProc, err := anypb.New(spec.extProc)
		if err != nil {
			return nil, err
		}
		if len(spec.proof) > 0 {
			if extProc, err = builtOnlyWhereAsked(extProc); err != nil {
				return nil, err
			}
		}
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{Name: wire.ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: extProc}})
	}
	hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}})
	if m.OTLP != nil {
		t, err := tracing(spec, m.SampleRatio)
		if err != nil {
			return nil, err
		}
		hcm.Tracing = t
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
	}}}, nil
}

// stripClientHeaders removes every header with graymesh's prefix as the
// request arrives, before any filter or route sees it, and at the edge
// also any lane: only graymesh hands one out there, and a lane a client
// replays must not reach the inner hops (not even while graymesh is down).
func stripClientHeaders(edge bool) (*corev3.TypedExtensionConfig, error) {
	remove := func(m *matcherv3.StringMatcher) *mutationrulesv3.HeaderMutation {
		return &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: m},
		}}
	}
	mutations := []*mutationrulesv3.HeaderMutation{remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: wire.HeaderPrefix}})}
	if edge {
		mutations = append(mutations, remove(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: wire.HeaderLane}}))
	}
	strip, err := anypb.New(&earlymutationv3.HeaderMutation{Mutations: mutations})
	if err != nil {
		return nil, err
	}
	return &corev3.TypedExtensionConfig{Name: "graymesh.strip_client_headers", TypedConfig: strip}, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
