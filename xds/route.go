package xds

import (
	"math"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// virtualHost routes one service's traffic along routes of the plan.
func virtualHost(service string, routes []plan.Route, domains []string) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: service, Domains: domains,
		// Responses carry the config version the request was decided
		// with, so clients see when the rules changed and can refresh.
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:         &corev3.HeaderValue{Key: wire.HeaderVersion, Value: "%REQ(" + wire.HeaderVersion + ")%"},
			AppendAction:   corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			KeepEmptyValue: false,
		}},
	}
	for _, r := range routes {
		vh.Routes = append(vh.Routes, route(service, r))
	}
	return vh
}

func route(service string, r plan.Route) *routev3.Route {
	out := &routev3.Route{Name: service + "/" + r.Name, Match: routeMatch(r.Match)}
	if len(r.Backends) == 1 {
		b := r.Backends[0]
		out.Action = clusterAction(plan.ClusterName(service, b.Env))
		switch {
		case r.DropLane:
			out.RequestHeadersToAdd = []*corev3.HeaderValueOption{overwrite(wire.HeaderEnv, b.Env)}
		case b.StampEnv:
			out.RequestHeadersToAdd = []*corev3.HeaderValueOption{envHeader(b.Env)}
		}
	} else {
		out.Action = weightedAction(service, r.Backends)
	}
	if r.Reason != "" {
		innerRoute(out, r)
	}
	return out
}

// innerRoute makes a route of an inner hop say what graymesh would have
// said there, since no graymesh is asked: the reason, to the service
// (x-gray-reason) and, in the trace vocabulary, to the sidecar's span
// (route metadata); why stable serves a lane the service has no version
// of; why a lane was refused. A lane that is not honoured goes no further.
func innerRoute(out *routev3.Route, r plan.Route) {
	out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, overwrite(wire.HeaderReason, r.Reason))
	traceReason := r.Reason
	if traceReason == wire.ReasonLaneMissing {
		traceReason = wire.ReasonDefault
	}
	fields := map[string]*structpb.Value{wire.MetadataReason: structpb.NewStringValue(traceReason)}
	if v := r.Match.MaxVersion; v != nil {
		// The span of a hop a kill stopped says up to which version the
		// kill stops lanes here, so verify-traces can tell a node that
		// had not caught up from a kill.
		fields[wire.MetadataVersion] = structpb.NewStringValue(strconv.FormatInt(*v, 10))
	}
	out.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		wire.MetadataNamespace: {Fields: fields},
	}}
	if r.Fallback {
		out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, overwrite(wire.HeaderFallback, plan.NoVersion("%REQ("+wire.HeaderEnv+")%")))
	}
	if r.Match.Kind == plan.MatchLane {
		out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, overwrite(wire.HeaderLaneProblem, laneProblem))
	}
	if r.DropLane {
		out.RequestHeadersToRemove = []string{wire.HeaderLane}
	}
}

// overwrite sets a request header, replacing any value (an empty value
// is left off).
func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func routeMatch(m plan.Match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	exact := func(name, value string) []*routev3.HeaderMatcher {
		return []*routev3.HeaderMatcher{exactHeader(name, value)}
	}
	present := func(name string) []*routev3.HeaderMatcher { return []*routev3.HeaderMatcher{presentHeader(name)} }
	switch m.Kind {
	case plan.MatchEnv:
		rm.Headers = exact(wire.HeaderEnv, m.Env)
	case plan.MatchOtherEnv:
		rm.Headers = present(wire.HeaderEnv)
	case plan.MatchRelease:
		rm.Headers = exact(wire.HeaderRelease, m.Release)
		if m.MaxVersion != nil {
			rm.Headers = append(rm.Headers, versionAtMost(*m.MaxVersion))
		}
	case plan.MatchLane:
		rm.Headers = present(wire.HeaderLane)
	case plan.MatchAnonymous:
		rm.Headers = absentHeaders(m.Absent)
	case plan.MatchProof:
		rm.Headers = append([]*routev3.HeaderMatcher{
			exactHeader(wire.HeaderProofBound, "true"),
			exactHeader(wire.HeaderProofDecision, wire.ProofDecision(m.Version, m.Env, m.Release)),
		}, absentHeaders(m.Absent)...)
	}
	return rm
}

func exactHeader(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}},
	}}
}

func presentHeader(name string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
}

// versionAtMost matches a lane issued under config version v or before
// (the version claim, copied to x-gray-version by the lane check), and a
// lane whose version Envoy cannot read as an integer. Envoy's header
// range_match takes an integer header value and a half-open range; a
// missing or non-integer value never matches a range. So the matcher is
// the range of versions after v, inverted, with a missing header read as
// empty: inverting then matches it too, and a lane with no version, or a
// request whose version header the lane check has not yet been told to
// set, is stopped as before. Envoy compares header matchers in order and
// stops at the first that fails, so a lane of a release not killed costs
// nothing more here.
func versionAtMost(v int64) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                      wire.HeaderVersion,
		HeaderMatchSpecifier:      &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: v + 1, End: math.MaxInt64}},
		InvertMatch:               true,
		TreatMissingHeaderAsEmpty: true,
	}
}

func clusterAction(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}
}

// weightedAction splits undecided traffic per request. Each branch adds
// x-gray-env, so every later hop sees the environment this hop chose.
func weightedAction(service string, backends []plan.Backend) *routev3.Route_Route {
	clusters := make([]*routev3.WeightedCluster_ClusterWeight, 0, len(backends))
	for _, b := range backends {
		cw := &routev3.WeightedCluster_ClusterWeight{Name: plan.ClusterName(service, b.Env), Weight: wrapperspb.UInt32(b.Weight)}
		if b.StampEnv {
			cw.RequestHeadersToAdd = []*corev3.HeaderValueOption{envHeader(b.Env)}
		}
		clusters = append(clusters, cw)
	}
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: clusters},
	}}}
}

// envHeader names the environment a hop chose, unless one is already set.
func envHeader(env string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: wire.HeaderEnv, Value: env},
		AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
	}
}

// outboundRouteConfig routes a sidecar's outgoing calls, by Host, to each
// peer's inbound listener; it returns the routes and the peer clusters.
func outboundRouteConfig(name string, svc *plan.Service) (*routev3.RouteConfiguration, []*clusterv3.Cluster) {
	out := &routev3.RouteConfiguration{Name: name}
	var clusters []*clusterv3.Cluster
	for _, peer := range svc.Sidecar.Peers {
		cluster := "inbound|" + peer.Name
		clusters = append(clusters, staticCluster(cluster, []*endpointv3.LbEndpoint{lbEndpoint(peer.Inbound)}, clusterv3.Cluster_STATIC))
		out.VirtualHosts = append(out.VirtualHosts, &routev3.VirtualHost{
			Name:    peer.Name,
			Domains: []string{peer.Name, peer.Name + ":*"},
			Routes: []*routev3.Route{{
				Name:   svc.Name + "->" + peer.Name,
				Match:  routeMatch(plan.Match{Kind: plan.MatchAll}),
				Action: clusterAction(cluster),
			}},
		})
	}
	return out, clusters
}

// fallbackRouteConfig serves stable on the fallback listener and marks the
// request with why, keeping the lane for later hops. The listener strips
// nothing (a retried request keeps the headers graymesh set), so whoever
// reaches it directly may send any x-gray-env: the reason is one of
// graymesh's own values, chosen by an exact match on an environment the
// service has, never built from the header's text. A request naming none
// of them is served stable with neither header, so no caller text reaches
// the stable service or the span.
func fallbackRouteConfig(name string, svc *plan.Service) *routev3.RouteConfiguration {
	var routes []*routev3.Route
	for _, e := range svc.Envs {
		if e.Name == config.Stable {
			continue
		}
		routes = append(routes, &routev3.Route{
			Name:                svc.Name + "/fallback-" + e.Name,
			Match:               routeMatch(plan.Match{Kind: plan.MatchEnv, Env: e.Name}),
			Action:              clusterAction(plan.ClusterName(svc.Name, config.Stable)),
			RequestHeadersToAdd: []*corev3.HeaderValueOption{overwrite(wire.HeaderFallback, e.Name+wire.UnavailableSuffix)},
		})
	}
	routes = append(routes, &routev3.Route{
		Name:                   svc.Name + "/fallback",
		Match:                  routeMatch(plan.Match{Kind: plan.MatchAll}),
		Action:                 clusterAction(plan.ClusterName(svc.Name, config.Stable)),
		RequestHeadersToRemove: []string{wire.HeaderFallback, wire.HeaderEnv},
	})
	return &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{{Name: svc.Name + "-fallback", Domains: []string{"*"}, Routes: routes}},
	}
}

// fallbackRetry retries a failed connection once, one priority down.
func fallbackRetry() *routev3.RetryPolicy {
	prio, _ := anypb.New(&previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: 1})
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset",
		NumRetries: wrapperspb.UInt32(1),
		RetryPriority: &routev3.RetryPolicy_RetryPriority{
			Name:       "envoy.retry_priorities.previous_priorities",
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: prio},
		},
	}
}
