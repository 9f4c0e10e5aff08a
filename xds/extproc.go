package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/graymesh/graymesh/internal/adapters/extprocmode"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// extProcFilter asks graymesh about request headers. failure_mode_allow
// makes an unreachable, failing or slow graymesh cost gray routing, never
// the request: it continues without our headers and routes to stable.
//
// The hop and service travel as gRPC initial metadata, so one graymesh
// serves edge and inner hops alike.
func extProcFilter(m plan.Mesh, hop, service string) *extprocv3.ExternalProcessor {
	md := []*corev3.HeaderValue{{Key: wire.MetadataHop, Value: hop}}
	if service != "" {
		md = append(md, &corev3.HeaderValue{Key: wire.MetadataService, Value: service})
	}
	ep := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster},
			},
			InitialMetadata: md,
		},
		FailureModeAllow: true,
		// Response headers are skipped by default: graymesh asks for them
		// (allow_mode_override below) only on the requests where it sets a
		// membership token.
		ProcessingMode:    extprocmode.Default(),
		MessageTimeout:    durationpb.New(m.MessageTimeout),
		AllowModeOverride: true,
		// Envoy sends every request header unless told otherwise; each
		// costs both sides an encode, a decode and allocations per
		// request. graymesh reads only these, and removes any x-gray-*
		// header a client sent.
		ForwardRules: forwardRules(m.DecisionHeaders),
		// The one override graymesh sends (extproc's answer to request
		// headers that hand out a membership token): also send the
		// response headers. Envoy refuses any other, so a processor can
		// never turn on body or trailer processing for the request.
		AllowedOverrideModes: []*extprocv3.ProcessingMode{extprocmode.WithResponseHeaders()},
		// Re-pick the route after graymesh answered request headers: the
		// route depends on x-gray-env, which graymesh sets. Explicit, not
		// left to the response's clear_route_cache bit.
		RouteCacheAction: extprocv3.ExternalProcessor_CLEAR,
		// graymesh hands the decision's reason, as traces say it, to the
		// sidecar's span as dynamic metadata; Envoy drops received
		// metadata outside the namespaces named here.
		MetadataOptions: &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: []string{wire.MetadataNamespace},
		}},
	}
	if m.PeerAddress {
		// The TCP peer Envoy saw, for the releases' cidrs rules: only
		// then, since Envoy builds an attributes struct per request.
		ep.RequestAttributes = []string{wire.SourceAddressAttribute}
	}
	return ep
}

// forwardRules lets Envoy send graymesh only the named request headers and
// those starting with x-gray-.
func forwardRules(names []string) *extprocv3.HeaderForwardingRules {
	patterns := make([]*matcherv3.StringMatcher, 0, len(names)+1)
	for _, n := range names {
		patterns = append(patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}})
	}
	patterns = append(patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: wire.HeaderPrefix}})
	return &extprocv3.HeaderForwardingRules{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: patterns}}
}
