package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// anonymousRoute is an edge's first route when Envoy splits anonymous
// traffic itself (plan.Service.Anonymous, signed by plan.Plan.Signed):
// each weighted cluster sets what graymesh's answer would have — the
// environment, release, reason, version and the window's lane for that
// environment — and the ext_proc filter is off for the route, so graymesh
// is not called. Inner hops verify the lane as they verify graymesh's, so
// the chain stays in the branch's lane.
func anonymousRoute(service string, r *plan.Route) (*routev3.Route, error) {
	// Envoy's ext_proc filter reads the route's per-filter config when the
	// request's headers arrive, before it would open a stream: the route
	// picked first (this one, since it is first and the listener already
	// stripped every x-gray-* header a client sent) turns the filter off.
	off, err := extProcOff()
	if err != nil {
		return nil, err
	}
	clusters := make([]*routev3.WeightedCluster_ClusterWeight, 0, len(r.Backends))
	for _, b := range r.Backends {
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{
			Name: plan.ClusterName(service, b.Env), Weight: wrapperspb.UInt32(b.Weight),
			RequestHeadersToAdd: routedHeaders(r, b),
		})
	}
	return &routev3.Route{
		Name:  service + "/" + r.Name,
		Match: routeMatch(r.Match),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: clusters},
		}}},
		TypedPerFilterConfig: map[string]*anypb.Any{wire.ExtProcFilterName: off},
	}, nil
}

// extProcOff is the per-route config that turns the ext_proc filter off.
func extProcOff() (*anypb.Any, error) {
	return anypb.New(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}})
}

// routedHeaders are what graymesh's answer would have set, on a route
// Envoy decides itself for backend b: the decision and b's lane.
func routedHeaders(r *plan.Route, b plan.Backend) []*corev3.HeaderValueOption {
	return []*corev3.HeaderValueOption{
		overwrite(wire.HeaderEnv, b.Env),
		overwrite(wire.HeaderRelease, r.Release),
		overwrite(wire.HeaderReason, r.Reason),
		overwrite(wire.HeaderVersion, r.Version),
		overwrite(wire.HeaderLane, b.Lane),
	}
}

// withAnonymous puts a service's Anonymous route, when it has one, first
// in its virtual host at an edge (an inner sidecar follows the lane).
func withAnonymous(vh *routev3.VirtualHost, svc *plan.Service, edge bool) error {
	if !edge || svc.Anonymous == nil {
		return nil
	}
	r, err := anonymousRoute(svc.Name, svc.Anonymous)
	if err != nil {
		return err
	}
	vh.Routes = append([]*routev3.Route{r}, vh.Routes...)
	return nil
}

// absentHeaders matches a request that has none of names. A header
// matcher that asks for presence and is inverted matches exactly when the
// header is missing, whatever its value would have been (an empty cookie
// header is still a cookie header, and goes to graymesh).
func absentHeaders(names []string) []*routev3.HeaderMatcher {
	out := make([]*routev3.HeaderMatcher, 0, len(names))
	for _, n := range names {
		out = append(out, &routev3.HeaderMatcher{Name: n, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true})
	}
	return out
}
