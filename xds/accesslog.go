package xds

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpcaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// accessLogFlush is how long Envoy buffers access-log entries before it
// sends them (Envoy's default is 1 s): an analysis window can be a few
// seconds long, and an entry that arrives late counts in the next window.
const accessLogFlush = 250 * time.Millisecond

// accessLog streams one entry per request to graymesh over gRPC
// (envoy.service.accesslog.v3): the upstream cluster that served it
// (service|env), its response code and flags, its duration and the
// dynamic metadata graymesh's decision set (the caller). It goes to the
// ext_proc cluster: graymesh's gRPC port serves both, and the cluster is
// one graymesh pushes itself (HTTP/2, generous circuit breakers).
func accessLog() (*accesslogv3.AccessLog, error) {
	cfg, err := anypb.New(&grpcaccesslogv3.HttpGrpcAccessLogConfig{
		CommonConfig: &grpcaccesslogv3.CommonGrpcAccessLogConfig{
			LogName: wire.AccessLogName,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster},
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
			BufferFlushInterval: durationpb.New(accessLogFlush),
		},
		// A stress-test request is shadow load: the analysis leaves it
		// out (accesslog.Receiver).
		AdditionalRequestHeadersToLog: []string{wire.HeaderStress, wire.HeaderProofCallerHash},
	})
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.http_grpc", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg}}, nil
}
