package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// anonymousRoute is an edge's first route when Envoy splits anonymous
// traffic itself (plan.Service.Anonymous, signed by plan.Plan.Signed):
// each weighted cluster sets what graymesh's answer would have — the
// environment, release, reason, version and the window's lane for that
// environment — and the ext_proc filter is not built for the route, so
// graymesh is not called. Inner hops verify the lane as they verify graymesh's, so
// the chain stays in the branch's lane.
func anonymousRoute(service string, r *plan.Route) (*routev3.Route, error) {
	// The route picked as the request arrives (this one, since it is
	// first and the listener already stripped every x-gray-* header a
	// client sent) is the one Envoy builds the request's filters for: a
	// filter it disables is not even built. An ext_proc filter that is
	// built and then finds itself turned off still costs its construction
	// (30k–36k instructions a request, bench-ir's
	// EDGE-returning-noextproc). No filter moves an anonymous request to
	// another route: only a bound proof does, and a bound proof needs the
	// authorization header this route requires absent.
	off, err := filterNotBuilt()
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

// filterNotBuilt is the per-route config, given for one HTTP filter, of a
// route picked as the request arrives: Envoy does not build that filter
// for the request (ext_proc on an anonymous route; at an edge routing
// returning callers, the proof filters on the routes a request without a
// proof arrives on). Were the filter built all the same (the route picked
// after another), it would find no config of its own here and run as it
// always does.
func filterNotBuilt() (*anypb.Any, error) {
	return anypb.New(&routev3.FilterConfig{Disabled: true})
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
