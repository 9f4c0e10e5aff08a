// Package xds translates graymesh's routing plan into Envoy resources and
// serves them over ADS with go-control-plane. Envoys that are not a
// configured sidecar share the default group; each sidecar gets its own.
//
// One file per Envoy feature: cluster.go (clusters and fallback failover),
// route.go (routes from the plan's routes), listener.go (listeners, the
// client-header strip), extproc.go (the ext_proc filter at the edge),
// lane.go (inner hops verifying the lane in Envoy: jwt_authn),
// anonymous.go (the edge splitting anonymous traffic itself), tracing.go
// (Envoy's OpenTelemetry tracer), accesslog.go (the access log streamed to
// graymesh for analysis), server.go (snapshots and ADS).
package xds

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Resource names graymesh pushes.
const (
	ListenerName   = "graymesh_ingress"
	RouteName      = "graymesh_routes"
	ExtProcCluster = "graymesh_extproc"
	OTelCluster    = "graymesh_otel"
)

// Resources are the Envoy resources of one group, by kind.
type Resources struct {
	Clusters  []*clusterv3.Cluster
	Routes    []*routev3.RouteConfiguration
	Listeners []*listenerv3.Listener
	// Extensions are HTTP filter configs listeners discover over ADS
	// (ECDS): an inner sidecar's lane check.
	Extensions []*corev3.TypedExtensionConfig
}

// Build translates p into the resources of the default group: one
// listener routing every service, deciding with ext_proc. It is pure: the
// same plan gives byte-identical resources.
func Build(p *plan.Plan) (*Resources, error) {
	r, err := baseClusters(p.Mesh)
	if err != nil {
		return nil, err
	}
	rc := &routev3.RouteConfiguration{Name: RouteName}
	for i := range p.Services {
		s := &p.Services[i]
		r.addServiceClusters(s)
		vh := virtualHost(s.Name, s.Routes, s.Domains)
		if err := withAnonymous(vh, s, true); err != nil {
			return nil, err
		}
		if err := withReturning(vh, p, s); err != nil {
			return nil, err
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	r.Routes = append(r.Routes, rc)
	proof, err := edgeProofFilters(p, p.Services...)
	if err != nil {
		return nil, err
	}
	r.addProofCheck(proof)
	l, err := listener(listenerSpec{
		name: ListenerName, address: p.Mesh.Listener,
		routeName: RouteName, statPrefix: "ingress", traceName: "graymesh-edge", operation: wire.SpanInbound + laneInName,
		extProc: extProcFilter(p.Mesh, wire.HopEdge, ""), proof: proof.filters,
	}, p.Mesh)
	if err != nil {
		return nil, err
	}
	r.Listeners = append(r.Listeners, l)
	return r, nil
}

// BuildSidecar translates the resources of one service's own Envoy: an
// inbound listener that decides (edge) or follows the lane (inner) and
// routes to the service's environments, an outbound listener that routes
// the service's calls to the other sidecars and, when configured, the
// fallback listener that serves stable while keeping the lane.
func BuildSidecar(p *plan.Plan, svc *plan.Service) (*Resources, error) {
	sc := svc.Sidecar
	r, err := baseClusters(p.Mesh)
	if err != nil {
		return nil, err
	}
	r.addServiceClusters(svc)
	hasFallback := sc.FallbackPort != 0
	if hasFallback {
		r.withFallback(svc)
	}
	routes, kind := svc.InnerRoutes, inner
	var extProc *extprocv3.ExternalProcessor
	if sc.Edge {
		routes, kind = svc.Routes, inbound
		extProc = extProcFilter(p.Mesh, wire.HopEdge, svc.Name)
	}
	inboundVH := virtualHost(svc.Name, routes, []string{"*"})
	if kind == inner {
		// An inner hop's request carries x-gray-version only while a
		// kill compares it (laneConfig); the strip removes a caller's.
		// The version is the lane's, which the edge's response already
		// says: nothing to copy back.
		inboundVH.ResponseHeadersToAdd = nil
	}
	if hasFallback {
		withFallbackRetries(inboundVH, routes)
	}
	if err := withAnonymous(inboundVH, svc, sc.Edge); err != nil {
		return nil, err
	}
	inboundRoutes, outboundRoutes := "inbound|"+svc.Name, "outbound|"+svc.Name
	r.Routes = append(r.Routes, &routev3.RouteConfiguration{Name: inboundRoutes, VirtualHosts: []*routev3.VirtualHost{inboundVH}})
	out, peerClusters := outboundRouteConfig(outboundRoutes, svc)
	r.Routes = append(r.Routes, out)
	r.Clusters = append(r.Clusters, peerClusters...)
	address := func(port uint32) plan.Endpoint { return plan.Endpoint{Host: sc.Address, Port: port} }
	in := listenerSpec{
		name: "inbound|" + svc.Name, address: address(sc.InboundPort),
		routeName: inboundRoutes, statPrefix: "inbound", traceName: svc.Name + "-sidecar",
		operation: wire.SpanInbound + " " + svc.Name,
		extProc:   extProc, kind: kind,
	}
	if kind == inbound {
		in.operation += laneInName
		if in.proof, err = returningAtEdge(r, inboundVH, p, svc); err != nil {
			return nil, err
		}
	}
	if kind == inner && p.Lane != nil {
		// Inner hops verify the lane in Envoy and never ask graymesh: no
		// ext_proc filter at all on their inbound listener.
		check, err := laneConfig(p.Lane, p.KilledThrough != nil)
		if err != nil {
			return nil, err
		}
		in.lane = true
		r.Extensions = append(r.Extensions, check)
	}
	specs := []listenerSpec{in, {
		name: "outbound|" + svc.Name, address: address(sc.OutboundPort),
		routeName: outboundRoutes, statPrefix: "outbound", traceName: svc.Name + "-sidecar",
		// Named after the peer called: the Host the service sent.
		operation: wire.SpanOutbound + " " + svc.Name + "->%REQ(:authority)%",
		// Calls leave with the lane the service passed on; the receiving
		// sidecar strips x-gray-* and verifies the lane again, so nothing
		// is stripped or decided on the way out.
		kind: outbound,
	}}
	if hasFallback {
		fbRoutes := "fallback|" + svc.Name
		r.Routes = append(r.Routes, fallbackRouteConfig(fbRoutes, svc))
		specs = append(specs, listenerSpec{
			name: "fallback|" + svc.Name, address: address(sc.FallbackPort),
			routeName: fbRoutes, statPrefix: "fallback", traceName: svc.Name + "-sidecar",
			operation: wire.SpanFallback + " " + svc.Name,
			// Reached only from this sidecar's own clusters: the lane must
			// survive, so nothing is stripped.
			kind: fallback,
		})
	}
	for _, spec := range specs {
		if spec.kind != inbound {
			// Every listener a lane can enter the mesh's chains by:
			// inner hops honour it, outbound and fallback listeners pass
			// it on to peers that honour it.
			spec.laneSources = p.Mesh.LaneSources
		}
		l, err := listener(spec, p.Mesh)
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, l)
	}
	return r, nil
}

// withFallbackRetries retries a connection to a gray endpoint that fails
// one priority down, on the fallback listener: vh's routes are routes'.
func withFallbackRetries(vh *routev3.VirtualHost, routes []plan.Route) {
	for i, rt := range routes {
		if rt.Match.Kind == plan.MatchEnv && rt.Match.Env != config.Stable {
			vh.Routes[i].GetRoute().RetryPolicy = fallbackRetry()
		}
	}
}

// Validate runs Envoy's proto validation over every resource; an error
// names the resource.
func (r *Resources) Validate() error {
	var errs []error
	for _, c := range r.Clusters {
		if err := c.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.GetName(), err))
		}
	}
	for _, rc := range r.Routes {
		if err := rc.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("route configuration %s: %w", rc.GetName(), err))
		}
	}
	for _, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l.GetName(), err))
		}
	}
	for _, e := range r.Extensions {
		if err := validateExtension(e); err != nil {
			errs = append(errs, fmt.Errorf("extension config %s: %w", e.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// addProofCheck serves an edge's proof check over ECDS, when it has one.
func (r *Resources) addProofCheck(p proofFilters) {
	if p.check != nil {
		r.Extensions = append(r.Extensions, p.check)
	}
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
	for _, e := range r.Extensions {
		out = append(out, e)
	}
	return out
}

// validateExtension validates an extension config and the filter config
// it carries.
func validateExtension(e *corev3.TypedExtensionConfig) error {
	if err := e.ValidateAll(); err != nil {
		return err
	}
	m, err := e.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return err
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}

// laneInName ends the name of the edge's span with the environment the
// chain travels in ("inbound frontend gray"), so Jaeger's search results,
// which list each trace by its root span, tell gray chains from stable
// ones. Envoy formats the operation when the span ends, after graymesh
// (or the route default) set x-gray-env.
const laneInName = " %REQ(" + wire.HeaderEnv + ")%"
