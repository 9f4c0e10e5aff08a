package xds

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

func TestNACKRestoresLastAcceptedSnapshot(t *testing.T) {
	s := New(context.Background(), slog.New(slog.DiscardHandler))
	load := func(port string) *plan.Plan {
		return parsePlan(t, "mesh: {listener_port: "+port+"}\nservices: [{name: shop, environments: {stable: [\"127.0.0.1:9101\"]}}]")
	}
	if err := s.Update(load("10000")); err != nil {
		t.Fatal(err)
	}
	good := s.Version()
	cb := s.callbacks()
	node := &corev3.Node{Id: "envoy-1"}
	const (
		cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
		lds = "type.googleapis.com/envoy.config.listener.v3.Listener"
		rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	)
	_ = cb.OnStreamRequest(1, &discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: cds})
	for _, typ := range []string{cds, lds, rds} {
		_ = cb.OnStreamRequest(1, &discoverygrpc.DiscoveryRequest{TypeUrl: typ, VersionInfo: good, ResponseNonce: "1"})
	}

	if err := s.Update(load("10001")); err != nil {
		t.Fatal(err)
	}
	bad := s.Version()
	if bad == good {
		t.Fatal("no new snapshot")
	}
	// Envoy accepts the new clusters, then rejects the listener.
	_ = cb.OnStreamRequest(1, &discoverygrpc.DiscoveryRequest{TypeUrl: cds, VersionInfo: bad, ResponseNonce: "2"})
	_ = cb.OnStreamRequest(1, &discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: lds, VersionInfo: good, ResponseNonce: "3", ErrorDetail: &statuspb.Status{Message: "cannot bind"}})
	testutil.Eventually(t, "the last good snapshot restored", testutil.Within(5*time.Second),
		testutil.Holds(func() bool { return s.Stats.Restores.Load() > 0 }))
	if s.Version() != good || s.Stats.Restores.Load() != 1 || s.Stats.NACKs.Load() != 1 {
		t.Fatalf("version %s (good %s, bad %s), restores %d", s.Version(), good, bad, s.Stats.Restores.Load())
	}
	// The rejected content is not offered again on the next update.
	if err := s.Update(load("10001")); err != nil {
		t.Fatal(err)
	}
	if s.Version() != good {
		t.Fatal("rejected snapshot offered again")
	}
}
