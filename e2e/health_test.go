package e2e

import (
	"context"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
)

// TestExtProcHealthService asks graymesh's ext_proc port what a gRPC
// health check (Envoy's, or a Kubernetes gRPC probe) asks.
func TestExtProcHealthService(t *testing.T) {
	m := newMesh(t, "")
	conn, err := grpc.NewClient(m.extproc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	client := healthgrpc.NewHealthClient(conn)
	for _, service := range []string{"", extprocsvcv3.ExternalProcessor_ServiceDesc.ServiceName} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: service})
		cancel()
		if err != nil || resp.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", service, resp.GetStatus(), err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "no.such.Service"}); err == nil {
		t.Fatal("an unknown service reported healthy")
	}
}
