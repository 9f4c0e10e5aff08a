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
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/wire"
)

// Resource names graymesh pushes.
const (
	ListenerName   = "graymesh_ingress"
	RouteName      = "graymesh_routes"
	ExtProcCluster = "graymesh_extproc"
	OTelCluster    = "graymesh_otel"
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

// Build translates cfg into the resources of the default group: one
// listener routing every service, deciding with ext_proc. Envoys that are
// not a configured sidecar get these. It is pure: the same config gives
// byte-identical resources.
func Build(cfg *config.Config) (*Resources, error) {
	r, err := baseClusters(cfg)
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Services {
		if err := r.addServiceClusters(s); err != nil {
			return nil, err
		}
	}
	rc := &routev3.RouteConfiguration{Name: RouteName}
	for _, s := range cfg.Services {
		rc.VirtualHosts = append(rc.VirtualHosts, serviceVirtualHost(cfg, s, s.Domains))
	}
	r.Routes = append(r.Routes, rc)
	l, err := listener(listenerSpec{
		name: ListenerName, address: cfg.Mesh.ListenerAddress, port: cfg.Mesh.ListenerPort,
		routeName: RouteName, statPrefix: "ingress", traceName: "graymesh-edge",
		extProc: extProcFilter(cfg.Mesh.MessageTimeout.Duration, wire.HopEdge, ""),
	}, cfg)
	if err != nil {
		return nil, err
	}
	r.Listeners = append(r.Listeners, l)
	return r, nil
}

// BuildSidecar translates cfg into the resources of one service's own
// Envoy: an inbound listener that decides (edge) or follows the lane
// (inner) and routes to the service's environments, and an outbound
// listener that routes the service's calls to the other sidecars.
func BuildSidecar(cfg *config.Config, svc config.Service) (*Resources, error) {
	r, err := baseClusters(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.addServiceClusters(svc); err != nil {
		return nil, err
	}
	fallback := svc.Sidecar.FallbackPort != 0
	if fallback {
		r.withFallback(svc)
	}
	hop := wire.HopInner
	if svc.Sidecar.Edge {
		hop = wire.HopEdge
	}
	inboundRoutes := "inbound|" + svc.Name
	outboundRoutes := "outbound|" + svc.Name
	inboundVH := serviceVirtualHost(cfg, svc, []string{"*"})
	if fallback {
		for _, rt := range inboundVH.Routes[:len(envs(svc))-1] {
			// A connection to a gray endpoint that fails is retried one
			// priority down: on the fallback listener.
			rt.GetRoute().RetryPolicy = fallbackRetry()
		}
	}
	r.Routes = append(r.Routes, &routev3.RouteConfiguration{
		Name:         inboundRoutes,
		VirtualHosts: []*routev3.VirtualHost{inboundVH},
	})
	out := &routev3.RouteConfiguration{Name: outboundRoutes}
	for _, peer := range cfg.Sidecars() {
		if peer.Name == svc.Name {
			continue
		}
		name := "inbound|" + peer.Name
		c := staticCluster(name, []*endpointv3.LbEndpoint{lbEndpoint(peer.Sidecar.Address, peer.Sidecar.InboundPort)}, clusterv3.Cluster_STATIC)
		r.Clusters = append(r.Clusters, c)
		out.VirtualHosts = append(out.VirtualHosts, &routev3.VirtualHost{
			Name:    peer.Name,
			Domains: []string{peer.Name, peer.Name + ":*"},
			Routes: []*routev3.Route{{
				Name:   svc.Name + "->" + peer.Name,
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: clusterAction(name),
			}},
		})
	}
	r.Routes = append(r.Routes, out)
	in, err := listener(listenerSpec{
		name: "inbound|" + svc.Name, address: svc.Sidecar.Address, port: svc.Sidecar.InboundPort,
		routeName: inboundRoutes, statPrefix: "inbound", traceName: svc.Name + "-sidecar",
		extProc: extProcFilter(cfg.Mesh.MessageTimeout.Duration, hop, svc.Name),
	}, cfg)
	if err != nil {
		return nil, err
	}
	outL, err := listener(listenerSpec{
		name: "outbound|" + svc.Name, address: svc.Sidecar.Address, port: svc.Sidecar.OutboundPort,
		routeName: outboundRoutes, statPrefix: "outbound", traceName: svc.Name + "-sidecar",
		// Calls leave with the service's own baggage; the receiving
		// sidecar strips x-gray-* and re-derives the lane, so nothing is
		// stripped or decided on the way out.
		outbound: true,
	}, cfg)
	if err != nil {
		return nil, err
	}
	r.Listeners = append(r.Listeners, in, outL)
	if fallback {
		fbRoutes := "fallback|" + svc.Name
		r.Routes = append(r.Routes, &routev3.RouteConfiguration{
			Name: fbRoutes,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    svc.Name + "-fallback",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:   svc.Name + "/fallback",
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: clusterAction(ClusterName(svc.Name, config.Stable)),
					RequestHeadersToAdd: []*corev3.HeaderValueOption{{
						Header:       &corev3.HeaderValue{Key: wire.HeaderFallback, Value: "%REQ(" + wire.HeaderEnv + ")%-unavailable"},
						AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
					}},
				}},
			}},
		})
		fb, err := listener(listenerSpec{
			name: "fallback|" + svc.Name, address: svc.Sidecar.Address, port: svc.Sidecar.FallbackPort,
			routeName: fbRoutes, statPrefix: "fallback", traceName: svc.Name + "-sidecar",
			// Reached only from this sidecar's own clusters: the lane must
			// survive, so nothing is stripped.
			outbound: true,
		}, cfg)
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, fb)
	}
	return r, nil
}

// withFallback makes each non-stable environment cluster of svc fail over
// to the sidecar's fallback listener: its own endpoints at priority 0,
// health-checked, and the fallback listener at priority 1.
func (r *Resources) withFallback(svc config.Service) {
	for _, c := range r.Clusters {
		for _, env := range envs(svc)[1:] {
			if c.GetName() != ClusterName(svc.Name, env) {
				continue
			}
			c.LoadAssignment.Endpoints = append(c.LoadAssignment.Endpoints, &endpointv3.LocalityLbEndpoints{
				Priority:    1,
				LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(svc.Sidecar.Address, svc.Sidecar.FallbackPort)},
			})
			c.HealthChecks = []*corev3.HealthCheck{{
				Timeout:  durationpb.New(time.Second),
				Interval: durationpb.New(time.Second),
				// Envoy checks a cluster that has had no traffic only every
				// 60 s by default; a gray cluster may see none for a long
				// time, and its fallback endpoint (a listener that appears
				// after the cluster) must be known healthy before it is needed.
				NoTrafficInterval:  durationpb.New(time.Second),
				UnhealthyThreshold: wrapperspb.UInt32(1),
				HealthyThreshold:   wrapperspb.UInt32(1),
				HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
					// The default Host is the cluster name, and "svc|gray"
					// is not a valid host: servers answer 400.
					Host: svc.Name,
					Path: "/healthz",
				}},
			}}
		}
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

// baseClusters are the clusters every group needs: ext_proc and, when
// tracing is on, the OTLP collector.
func baseClusters(cfg *config.Config) (*Resources, error) {
	r := &Resources{}
	ep, err := grpcCluster(ExtProcCluster, cfg.Mesh.ExtProcAddress)
	if err != nil {
		return nil, fmt.Errorf("mesh.extproc_address: %w", err)
	}
	// Every in-flight HTTP request holds one ext_proc stream.
	ep.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(extProcMaxRequests),
		MaxPendingRequests: wrapperspb.UInt32(extProcMaxRequests),
		MaxRequests:        wrapperspb.UInt32(extProcMaxRequests),
	}}}
	ep.ConnectTimeout = durationpb.New(250 * time.Millisecond)
	r.Clusters = append(r.Clusters, ep)
	if cfg.Tracing.OTLPEndpoint != "" {
		c, err := grpcCluster(OTelCluster, cfg.Tracing.OTLPEndpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
		}
		r.Clusters = append(r.Clusters, c)
	}
	return r, nil
}

func (r *Resources) addServiceClusters(s config.Service) error {
	for _, env := range envs(s) {
		c, err := serviceCluster(ClusterName(s.Name, env), s.Environments[env])
		if err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		r.Clusters = append(r.Clusters, c)
	}
	return nil
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

// grpcCluster is a cluster to a gRPC server: it must speak HTTP/2.
func grpcCluster(name, addr string) (*clusterv3.Cluster, error) {
	c, err := serviceCluster(name, []string{addr})
	if err != nil {
		return nil, err
	}
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
		lbs = append(lbs, lbEndpoint(host, uint32(port)))
	}
	return staticCluster(name, lbs, discovery), nil
}

func staticCluster(name string, lbs []*endpointv3.LbEndpoint, discovery clusterv3.Cluster_DiscoveryType) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
		},
	}
}

func lbEndpoint(host string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: socketAddress(host, port),
	}}}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// serviceVirtualHost routes one service's traffic. In order:
//  1. x-gray-env names an environment the service has → that cluster;
//  2. x-gray-env names any other value → stable, header kept so a later
//     hop that has that environment serves it again;
//  3. no x-gray-env (nothing decided) → stable, or the traffic-weighted
//     release's split, each branch stamping x-gray-env with what it chose.
func serviceVirtualHost(cfg *config.Config, s config.Service, domains []string) *routev3.VirtualHost {
	var weighted *config.Release
	for i := range cfg.Releases {
		if cfg.Releases[i].TrafficPercent > 0 {
			weighted = &cfg.Releases[i]
		}
	}
	vh := &routev3.VirtualHost{Name: s.Name, Domains: domains,
		// Responses carry the config version the request was decided
		// with, so clients see when the rules changed (seed 002).
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:         &corev3.HeaderValue{Key: wire.HeaderVersion, Value: "%REQ(" + wire.HeaderVersion + ")%"},
			AppendAction:   corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			KeepEmptyValue: false,
		}},
	}
	for _, env := range envs(s)[1:] {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:   s.Name + "/" + env,
			Match:  headerMatch(&routev3.HeaderMatcher{Name: wire.HeaderEnv, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: env}}}}),
			Action: clusterAction(ClusterName(s.Name, env)),
		})
	}
	vh.Routes = append(vh.Routes, &routev3.Route{
		Name:   s.Name + "/other-env",
		Match:  headerMatch(&routev3.HeaderMatcher{Name: wire.HeaderEnv, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}),
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
	return vh
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
		Header:       &corev3.HeaderValue{Key: wire.HeaderEnv, Value: env},
		AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
	}
}

type listenerSpec struct {
	name, address         string
	port                  uint32
	routeName, statPrefix string
	// traceName is the service name of the spans this listener reports.
	traceName string
	// extProc, when set, asks graymesh about every request.
	extProc *extprocv3.ExternalProcessor
	// outbound listeners neither strip nor decide.
	outbound bool
}

func listener(spec listenerSpec, cfg *config.Config) (*listenerv3.Listener, error) {
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
	if !spec.outbound {
		strip, err := anypb.New(&earlymutationv3.HeaderMutation{Mutations: []*mutationrulesv3.HeaderMutation{{
			Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{
				KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: wire.HeaderPrefix}},
			}},
		}}})
		if err != nil {
			return nil, err
		}
		// Whoever calls this listener does not get to say which
		// environment serves it: X-Forwarded-For is not trusted, and
		// every x-gray-* header is removed before any filter runs, so a
		// spoofed x-gray-env cannot route even when ext_proc is down and
		// the filter fails open.
		hcm.UseRemoteAddress = wrapperspb.Bool(true)
		hcm.EarlyHeaderMutationExtensions = []*corev3.TypedExtensionConfig{{
			Name:        "graymesh.strip_client_headers",
			TypedConfig: strip,
		}}
	}
	if spec.extProc != nil {
		extProc, err := anypb.New(spec.extProc)
		if err != nil {
			return nil, err
		}
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{Name: wire.ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: extProc}})
	}
	hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}})
	if cfg.Tracing.OTLPEndpoint != "" {
		t, err := tracing(spec.traceName, *cfg.Tracing.SampleRatio)
		if err != nil {
			return nil, err
		}
		hcm.Tracing = t
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    spec.name,
		Address: socketAddress(spec.address, spec.port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
		}}}},
	}, nil
}

// tracing reports Envoy's spans over OTLP gRPC to the collector cluster,
// tagged with the lane so a trace shows which environment each hop saw.
func tracing(serviceName string, sampleRatio float64) (*hcmv3.HttpConnectionManager_Tracing, error) {
	otelCfg, err := anypb.New(&tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: OTelCluster},
		}},
		ServiceName: serviceName,
	})
	if err != nil {
		return nil, err
	}
	tag := func(name, header string) *tracingtypev3.CustomTag {
		return &tracingtypev3.CustomTag{Tag: name, Type: &tracingtypev3.CustomTag_RequestHeader{
			RequestHeader: &tracingtypev3.CustomTag_Header{Name: header},
		}}
	}
	return &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: sampleRatio * 100},
		Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otelCfg}},
		CustomTags: []*tracingtypev3.CustomTag{
			tag("graymesh.lane", wire.HeaderEnv),
			tag("graymesh.reason", wire.HeaderReason),
			tag("graymesh.fallback", wire.HeaderFallback),
		},
	}, nil
}

// extProcFilter asks graymesh about request headers only. failure_mode_allow
// makes an unreachable, failing or slow graymesh cost gray routing, never
// the request: it continues without our headers and routes to stable.
//
// The hop and service travel as gRPC initial metadata, so one graymesh
// serves edge and inner hops alike.
func extProcFilter(timeout time.Duration, hop, service string) *extprocv3.ExternalProcessor {
	md := []*corev3.HeaderValue{{Key: wire.MetadataHop, Value: hop}}
	if service != "" {
		md = append(md, &corev3.HeaderValue{Key: wire.MetadataService, Value: service})
	}
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster},
			},
			InitialMetadata: md,
		},
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
		RequestAttributes: []string{wire.SourceAddressAttribute},
		// Lets graymesh ask for response headers only on the requests
		// where it sets a membership token.
		AllowModeOverride: true,
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
