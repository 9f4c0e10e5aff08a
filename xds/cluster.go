package xds

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// extProcMaxRequests lifts the ext_proc cluster's circuit breakers: every
// in-flight HTTP request holds one ext_proc stream, and Envoy's default of
// 1024 would turn a traffic burst into fail-open (stable) decisions.
const extProcMaxRequests = 1 << 20

// baseClusters are the clusters every group needs: ext_proc and, when
// tracing is on, the OTLP collector.
func baseClusters(m plan.Mesh) (*Resources, error) {
	r := &Resources{}
	ep, err := grpcCluster(ExtProcCluster, m.ExtProc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", ExtProcCluster, err)
	}
	ep.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(extProcMaxRequests),
		MaxPendingRequests: wrapperspb.UInt32(extProcMaxRequests),
		MaxRequests:        wrapperspb.UInt32(extProcMaxRequests),
	}}}
	ep.ConnectTimeout = durationpb.New(250 * time.Millisecond)
	r.Clusters = append(r.Clusters, ep)
	if m.OTLP != nil {
		c, err := grpcCluster(OTelCluster, *m.OTLP)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", OTelCluster, err)
		}
		r.Clusters = append(r.Clusters, c)
	}
	return r, nil
}

// addServiceClusters adds one cluster per environment of s, its
// endpoints marked with the environment they serve.
func (r *Resources) addServiceClusters(s *plan.Service) {
	for _, env := range s.Envs {
		c := endpointsCluster(plan.ClusterName(s.Name, env.Name), env.Endpoints)
		for _, lbs := range c.LoadAssignment.Endpoints {
			for _, lb := range lbs.LbEndpoints {
				lb.Metadata = endpointMetadata(env.Name, "")
			}
		}
		r.Clusters = append(r.Clusters, c)
	}
}

// withFallback makes each non-stable environment cluster of svc fail over
// to the sidecar's fallback listener: its own endpoints at priority 0,
// health-checked, and the fallback listener at priority 1.
func (r *Resources) withFallback(svc *plan.Service) {
	gray := map[string]string{}
	for _, env := range svc.Envs[1:] {
		gray[plan.ClusterName(svc.Name, env.Name)] = env.Name
	}
	for _, c := range r.Clusters {
		env, ok := gray[c.GetName()]
		if !ok {
			continue
		}
		fallback := lbEndpoint(plan.Endpoint{Host: svc.Sidecar.Address, Port: svc.Sidecar.FallbackPort})
		fallback.Metadata = endpointMetadata(config.Stable, env+wire.UnavailableSuffix)
		c.LoadAssignment.Endpoints = append(c.LoadAssignment.Endpoints, &endpointv3.LocalityLbEndpoints{
			Priority:    1,
			LbEndpoints: []*endpointv3.LbEndpoint{fallback},
		})
		c.HealthChecks = []*corev3.HealthCheck{fallbackHealthCheck(svc.Name)}
	}
}

func fallbackHealthCheck(host string) *corev3.HealthCheck {
	return &corev3.HealthCheck{
		Timeout:  durationpb.New(time.Second),
		Interval: durationpb.New(time.Second),
		// Envoy checks a cluster that has had no traffic only every 60 s
		// by default; a gray cluster may see none for a long time, and its
		// fallback endpoint (a listener that appears after the cluster)
		// must be known healthy before it is needed.
		NoTrafficInterval:  durationpb.New(time.Second),
		UnhealthyThreshold: wrapperspb.UInt32(1),
		HealthyThreshold:   wrapperspb.UInt32(1),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			// The default Host is the cluster name, and "svc|gray" is not
			// a valid host: servers answer 400.
			Host: host,
			Path: "/healthz",
		}},
	}
}

// grpcCluster is a cluster to a gRPC server: it must speak HTTP/2.
func grpcCluster(name string, ep plan.Endpoint) (*clusterv3.Cluster, error) {
	c := endpointsCluster(name, []plan.Endpoint{ep})
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

// endpointsCluster is a cluster over fixed endpoints: STATIC when every
// endpoint is an IP address, STRICT_DNS otherwise.
func endpointsCluster(name string, endpoints []plan.Endpoint) *clusterv3.Cluster {
	discovery := clusterv3.Cluster_STATIC
	lbs := make([]*endpointv3.LbEndpoint, 0, len(endpoints))
	for _, e := range endpoints {
		if !e.IsIP() {
			discovery = clusterv3.Cluster_STRICT_DNS
		}
		lbs = append(lbs, lbEndpoint(e))
	}
	return staticCluster(name, lbs, discovery)
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

func lbEndpoint(e plan.Endpoint) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: socketAddress(e),
	}}}
}

func socketAddress(e plan.Endpoint) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       e.Host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
	}}}
}
