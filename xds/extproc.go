package xds

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/graymesh/graymesh/internal/extprocmode"
	"github.com/graymesh/graymesh/wire"
)

// extProcFilter asks graymesh about request headers. failure_mode_allow
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
		// Response headers are skipped by default: graymesh asks for them
		// (allow_mode_override below) only on the requests where it sets a
		// membership token.
		ProcessingMode:    extprocmode.Default(),
		MessageTimeout:    durationpb.New(timeout),
		RequestAttributes: []string{wire.SourceAddressAttribute},
		AllowModeOverride: true,
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
}
