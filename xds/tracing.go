package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/graymesh/graymesh/wire"
)

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
