// Package xds turns graymesh's config into Envoy resources and serves them
// over ADS with go-control-plane. Every Envoy that connects, whatever its
// node id, receives the same snapshot.
package xds

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/extproc"
	"github.com/graymesh/graymesh/gray"
)

// Resource names graymesh pushes.
const (
	ListenerName   = "graymesh_ingress"
	RouteName      = "graymesh_routes"
	ExtProcCluster = "graymesh_extproc"
)

// extProcMaxRequests lifts the ext_proc cluster's circuit breakers: every
// in-flight HTTP request holds one ext_proc stream, and Envoy's default of
// 1024 would turn a traffic burst into fail-open (stable) decisions.
const extProcMaxRequests = 1 << 20

// ClusterName is the Envoy cluster of a service's environment.
func ClusterName(service, env string) string { return service + "|" + env }

// Resources are the Envoy resources for one config, by kind.
type Resources struct {
	Clusters  []*clusterv3.Cluster
	Routes    []*routev3.RouteConfiguration
	Listeners []*listenerv3.Listener
}

// Build translates cfg into Envoy resources. It is pure: the same config
// gives byte-identical resources.
func Build(cfg *config.Config) (*Resources, error) {
	r := &Resources{}
	ep, err := extProcCluster(cfg.Mesh.ExtProcAddress)
	if err != nil {
		return nil, err
	}
	r.Clusters = append(r.Clusters, ep)
	for _, s := range cfg.Services {
		for _, env := range envs(s) {
			c, err := serviceCluster(ClusterName(s.Name, env), s.Environments[env])
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", s.Name, err)
			}
			r.Clusters = append(r.Clusters, c)
		}
	}
	r.Routes = append(r.Routes, routeConfig(cfg))
	l, err := listener(cfg)
	if err != nil {
		return nil, err
	}
	r.Listeners = append(r.Listeners, l)
	return r, nil
}

// envs returns a service's environments, stable first, the rest sorted.
func envs(s config.Service) []string {
	out := make([]string, 0, len(s.Environments))
	for env := range s.Environments {
		if env != config.Stable {
			out = append(out, env)
		}
	}
	sort.Strings(out)
	return append([]string{config.Stable}, out...)
}

func extProcCluster(addr string) (*clusterv3.Cluster, error) {
	c, err := serviceCluster(ExtProcCluster, []string{addr})
	if err != nil {
		return nil, fmt.Errorf("mesh.extproc_address: %w", err)
	}
	// ext_proc is gRPC: the cluster must speak HTTP/2.
	opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	c.ConnectTimeout = durationpb.New(250 * time.Millisecond)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(extProcMaxRequests),
		MaxPendingRequests: wrapperspb.UInt32(extProcMaxRequests),
		MaxRequests:        wrapperspb.UInt32(extProcMaxRequests),
	}}}
	return c, nil
}

// serviceCluster is a cluster over fixed endpoints: STATIC when every
// endpoint is an IP address, STRICT_DNS otherwise.
func serviceCluster(name string, endpoints []string) (*clusterv3.Cluster, error) {
	discovery := clusterv3.Cluster_STATIC
	var lbs []*endpointv3.LbEndpoint
	for _, e := range endpoints {
		host, portStr, err := net.SplitHostPort(e)
		if err != nil {
			return nil, err
		}
		port, _ := strconv.Atoi(portStr)
		if _, err := netip.ParseAddr(host); err != nil {
			discovery = clusterv3.Cluster_STRICT_DNS
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(host, uint32(port)),
		}}})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
		},
	}, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// routeConfig has one virtual host per service. Inside each, in order:
//  1. x-gray-env names an environment the service has → that cluster;
//  2. x-gray-env names any other value → stable, header kept so a later
//     hop that has that environment serves it again;
//  3. no x-gray-env (nothing decided) → stable, or the traffic-weighted
//     release's split, each branch stamping x-gray-env with what it chose.
func routeConfig(cfg *config.Config) *routev3.RouteConfiguration {
	var weighted *config.Release
	for i := range cfg.Releases {
		if cfg.Releases[i].TrafficPercent > 0 {
			weighted = &cfg.Releases[i]
		}
	}
	rc := &routev3.RouteConfiguration{Name: RouteName}
	for _, s := range cfg.Services {
		vh := &routev3.VirtualHost{Name: s.Name, Domains: s.Domains}
		for _, env := range envs(s)[1:] {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Name:   s.Name + "/" + env,
				Match:  headerMatch(&routev3.HeaderMatcher{Name: gray.HeaderEnv, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: env}}}}),
				Action: clusterAction(ClusterName(s.Name, env)),
			})
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:   s.Name + "/other-env",
			Match:  headerMatch(&routev3.HeaderMatcher{Name: gray.HeaderEnv, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}),
			Action: clusterAction(ClusterName(s.Name, config.Stable)),
		})
		def := &routev3.Route{
			Name:  s.Name + "/default",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		}
		if weighted != nil && len(s.Environments[weighted.Env]) > 0 {
			def.Action = weightedAction(s.Name, weighted.Env, config.BasisPoints(weighted.TrafficPercent))
		} else {
			def.Action = clusterAction(ClusterName(s.Name, config.Stable))
			def.RequestHeadersToAdd = []*corev3.HeaderValueOption{envHeader(config.Stable)}
		}
		vh.Routes = append(vh.Routes, def)
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

func headerMatch(h *routev3.HeaderMatcher) *routev3.RouteMatch {
	return &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
		Headers:       []*routev3.HeaderMatcher{h},
	}
}

func clusterAction(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}
}

// weightedAction splits undecided traffic per request: basisPoints of
// 10000 go to env. Each branch adds x-gray-env, so every later hop sees
// the environment this hop chose.
func weightedAction(service, env string, basisPoints uint32) *routev3.Route_Route {
	var clusters []*routev3.WeightedCluster_ClusterWeight
	for _, b := range []struct {
		env    string
		weight uint32
	}{{config.Stable, gray.Buckets - basisPoints}, {env, basisPoints}} {
		if b.weight == 0 {
			continue
		}
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:                ClusterName(service, b.env),
			Weight:              wrapperspb.UInt32(b.weight),
			RequestHeadersToAdd: []*corev3.HeaderValueOption{envHeader(b.env)},
		})
	}
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: clusters},
	}}}
}

func envHeader(env string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: gray.HeaderEnv, Value: env},
		AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
	}
}

func listener(cfg *config.Config) (*listenerv3.Listener, error) {
	extProc, err := anypb.New(extProcFilter(cfg.Mesh.MessageTimeout.Duration))
	if err != nil {
		return nil, err
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	strip, err := anypb.New(&earlymutationv3.HeaderMutation{Mutations: []*mutationrulesv3.HeaderMutation{{
		Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{
			KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: config.HeaderPrefix}},
		}},
	}}})
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "ingress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: RouteName,
			ConfigSource:    adsSource(),
		}},
		// The edge does not trust X-Forwarded-For from clients.
		UseRemoteAddress: wrapperspb.Bool(true),
		// Strip client-sent graymesh headers before any filter runs, so
		// a spoofed x-gray-env cannot route even when ext_proc is down
		// and the filter fails open.
		EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{{
			Name:        "graymesh.strip_client_headers",
			TypedConfig: strip,
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: extproc.AttributeNamespace, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: extProc}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}},
		},
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    ListenerName,
		Address: socketAddress(cfg.Mesh.ListenerAddress, cfg.Mesh.ListenerPort),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
		}}}},
	}, nil
}

// extProcFilter asks graymesh about request headers only. failure_mode_allow
// makes an unreachable, failing or slow graymesh cost gray routing, never
// the request: it continues without our headers and routes to stable.
func extProcFilter(timeout time.Duration) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster},
		}},
		FailureModeAllow: true,
		// The default sends response headers too; we never answer them.
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		MessageTimeout:    durationpb.New(timeout),
		RequestAttributes: []string{extproc.SourceAddressAttribute},
	}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// Validate runs Envoy's proto validation over every resource.
func (r *Resources) Validate() error {
	for _, m := range r.all() {
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Resources) all() []proto.Message {
	var out []proto.Message
	for _, c := range r.Clusters {
		out = append(out, c)
	}
	for _, rc := range r.Routes {
		out = append(out, rc)
	}
	for _, l := range r.Listeners {
		out = append(out, l)
	}
	return out
}
