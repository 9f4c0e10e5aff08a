package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// tracing reports Envoy's spans over OTLP gRPC to the collector cluster,
// under the sidecar's service name and the listener's operation name.
// A listener that routes to a service's environments (inbound, fallback,
// the shared edge) tags its spans in the trace vocabulary of package
// wire; an outbound listener only calls a peer, whose own inbound span
// says what served it, so it adds nothing.
func tracing(spec listenerSpec, sampleRatio float64) (*hcmv3.HttpConnectionManager_Tracing, error) {
	otelCfg, err := anypb.New(&tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: OTelCluster},
		}},
		ServiceName: spec.traceName,
	})
	if err != nil {
		return nil, err
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: sampleRatio * 100},
		Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otelCfg}},
		// Without an operation, every span of every listener is named
		// after the listener's traffic direction ("ingress"): inbound,
		// outbound and fallback spans of one sidecar look alike.
		Operation: spec.operation,
	}
	if spec.kind != outbound {
		t.CustomTags = servedTags(spec.kind == inner, spec.extProc != nil)
	}
	return t, nil
}

// servedTags say which environment served the request and why. Envoy
// leaves off a tag whose value is empty or missing.
//
//   - variant: the endpoint that served it says (endpoint metadata), so a
//     request retried on the fallback listener reads stable;
//   - reason: at the edge, the x-gray-reason graymesh's decision set (or,
//     for an anonymous request Envoy split itself, its route); on a
//     fallback listener, dynamic metadata (absent: ext_proc did not run
//     there); at an inner hop, which asks no graymesh, the route that
//     served says it
//     (route metadata), and when it refused the lane, Envoy's reason why
//     (lane problem);
//   - lane and release: the headers graymesh set;
//   - fallback: the header graymesh (a service without the lane's
//     environment) or the fallback listener's route set, or, on the span
//     whose request was retried on the fallback listener, that endpoint's
//     metadata. At most one of the two is ever set;
//   - version, at an inner hop a kill stopped with fleet versions: the
//     newest lane version the kill stops there (the route's metadata).
//
// Where graymesh decides (asks is set), a span without graymesh's reason
// says "error": graymesh's answer never took effect — its message timeout
// expired or it was down, and the filter failed open — so traces tell a
// fail-open from a decision graymesh's own span reports (it may finish
// after the request went on without it).
func servedTags(innerHop, asks bool) []*tracingtypev3.CustomTag {
	header := func(tag, name string) *tracingtypev3.CustomTag {
		return &tracingtypev3.CustomTag{Tag: tag, Type: &tracingtypev3.CustomTag_RequestHeader{
			RequestHeader: &tracingtypev3.CustomTag_Header{Name: name},
		}}
	}
	metadata := func(tag string, kind *metadatav3.MetadataKind, key string) *tracingtypev3.CustomTag {
		return &tracingtypev3.CustomTag{Tag: tag, Type: &tracingtypev3.CustomTag_Metadata_{Metadata: &tracingtypev3.CustomTag_Metadata{
			Kind: kind,
			MetadataKey: &metadatav3.MetadataKey{Key: wire.MetadataNamespace, Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: key},
			}}},
		}}}
	}
	host := &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Host_{Host: &metadatav3.MetadataKind_Host{}}}
	reason := &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Request_{Request: &metadatav3.MetadataKind_Request{}}}
	if innerHop {
		reason = &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Route_{Route: &metadatav3.MetadataKind_Route{}}}
	}
	reasonTag := metadata(wire.AttrReason, reason, wire.MetadataReason)
	if asks {
		// Where graymesh decides, the reason is the one set on the
		// request: graymesh's answer's (the same as the dynamic metadata
		// it hands over) or, for a request Envoy split itself without
		// asking (xds.anonymousRoute), the route's. A client's is
		// stripped on arrival.
		reasonTag = header(wire.AttrReason, wire.HeaderReason)
		reasonTag.GetRequestHeader().DefaultValue = wire.ReasonError
	}
	tags := []*tracingtypev3.CustomTag{
		metadata(wire.AttrVariant, host, wire.MetadataEnv),
		reasonTag,
		header(wire.AttrLane, wire.HeaderEnv),
		header(wire.AttrRelease, wire.HeaderRelease),
		// A stress-test request, on every hop: graymesh's answer sets the
		// header at the edge, the lane's claim at inner hops.
		header(wire.AttrStress, wire.HeaderStress),
		{Tag: wire.AttrFallback, Type: &tracingtypev3.CustomTag_Value{
			Value: "%REQ(" + wire.HeaderFallback + ")%%UPSTREAM_METADATA(" + wire.MetadataNamespace + ":" + wire.MetadataFallback + ")%",
		}},
	}
	if innerHop {
		route := &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Route_{Route: &metadatav3.MetadataKind_Route{}}}
		tags = append(tags, header(wire.AttrLaneProblem, wire.HeaderLaneProblem),
			// Only a kill route that compares versions carries one.
			metadata(wire.AttrVersion, route, wire.MetadataVersion))
	}
	return tags
}

// endpointMetadata marks an endpoint of a service's environment cluster
// with the environment it serves and, for a fallback endpoint, why it
// serves stable: the sidecar's span reads it (servedTags).
func endpointMetadata(env, fallback string) *corev3.Metadata {
	fields := map[string]*structpb.Value{wire.MetadataEnv: structpb.NewStringValue(env)}
	if fallback != "" {
		fields[wire.MetadataFallback] = structpb.NewStringValue(fallback)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		wire.MetadataNamespace: {Fields: fields},
	}}
}
