package extproc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/lane"
)

const meshConfig = testConfig + `
lane: {key: "mesh-key-0123456789abcdef-0123456789"}
services:
  - name: frontend
    sidecar: {inbound_port: 10001, outbound_port: 15001, edge: true}
    environments: {stable: ["127.0.0.1:9201"]}
  - name: orders
    sidecar: {inbound_port: 10002, outbound_port: 15002}
    environments: {stable: ["127.0.0.1:9202"], gray: ["127.0.0.1:9203"]}
`

func meshPolicy(t *testing.T) *gray.Policy { return compile(t, meshConfig) }

// TestLaneAcrossHops: the edge replaces any lane the client sent with the
// one it signs; an inner hop asked over ext_proc (graymesh's own inner
// sidecars verify lanes in Envoy instead) follows a valid lane, keeps it,
// and drops one it refuses.
func TestLaneAcrossHops(t *testing.T) {
	p := meshPolicy(t)
	client := dial(t, New(p, slog.New(slog.DiscardHandler), nil))
	call := func(hop, service string, hm ...string) (map[string]string, []string) {
		t.Helper()
		ctx := metadata.AppendToOutgoingContext(context.Background(), wire.MetadataHop, hop, wire.MetadataService, service)
		stream, err := client.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(requestHeaders(headers(hm...), "")); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return mutation(t, resp)
	}

	// Edge: alice is whitelisted; the lane the client sent is replaced.
	set, _ := call(wire.HopEdge, "frontend", "authorization", "Bearer "+token(t, "alice"), wire.HeaderLane, "forged.lane.x")
	if set[wire.HeaderEnv] != "gray" || set[wire.HeaderFallback] != "no-gray-version" {
		t.Fatalf("edge set %v", set)
	}
	signed := set[wire.HeaderLane]
	if l, err := p.Lanes.Verify(signed, time.Now()); err != nil || l.Env != "gray" || l.Release != "shop-v2" {
		t.Fatalf("edge lane %q: %+v %v", signed, l, err)
	}
	// Edge, anonymous: nothing decided, the client's lane removed.
	set, removed := call(wire.HopEdge, "frontend", wire.HeaderLane, signed)
	if _, ok := set[wire.HeaderLane]; ok || !strings.Contains(strings.Join(removed, ","), wire.HeaderLane) {
		t.Fatalf("anonymous edge: set %v removed %v", set, removed)
	}

	// Inner hop with the edge's lane: honours it and leaves it alone.
	set, removed = call(wire.HopInner, "orders", wire.HeaderLane, signed)
	if set[wire.HeaderEnv] != "gray" || set[wire.HeaderReason] != "lane" || set[wire.HeaderRelease] != "shop-v2" {
		t.Fatalf("inner set %v", set)
	}
	if _, touched := set[wire.HeaderLane]; touched || len(removed) != 0 {
		t.Fatalf("inner hop rewrote a valid lane: set %v removed %v", set, removed)
	}

	// Inner hop with a forged lane (another mesh key; a lane names no key,
	// so none of ours verifies it): stable, the lane dropped, why said.
	other, _ := lane.NewSigner([]byte("other-key-0123456789abcdef-01234567"), time.Minute)
	set, removed = call(wire.HopInner, "orders", wire.HeaderLane, other.Sign("gray", "shop-v2", "1", time.Now()))
	if set[wire.HeaderEnv] != "stable" || set[wire.HeaderReason] != "lane-refused" || set[wire.HeaderLaneProblem] != lane.ErrSignature.Error() {
		t.Fatalf("forged lane set %v", set)
	}
	if !strings.Contains(strings.Join(removed, ","), wire.HeaderLane) {
		t.Fatalf("forged lane passed on: removed %v", removed)
	}

	// No lane at all, and a spoofed x-gray-env: removed, and none set
	// (stable serves by default, as at the sidecar's default route).
	set, removed = call(wire.HopInner, "orders", wire.HeaderEnv, "gray")
	if _, env := set[wire.HeaderEnv]; env || set[wire.HeaderReason] != "lane-missing" || strings.Join(removed, ",") != wire.HeaderEnv {
		t.Fatalf("no lane: set %v removed %v", set, removed)
	}

	// An expired lane: stable.
	s, _ := lane.NewSigner([]byte("mesh-key-0123456789abcdef-0123456789"), time.Second)
	old := s.Sign("gray", "shop-v2", "v", time.Now().Add(-time.Hour))
	set, _ = call(wire.HopInner, "orders", wire.HeaderLane, old)
	if set[wire.HeaderEnv] != "stable" || set[wire.HeaderReason] != "lane-refused" || set[wire.HeaderLaneProblem] != "lane-expired" {
		t.Fatalf("expired lane set %v", set)
	}
}

// TestStressMarkerAtTheEdge: a valid marker routes to the release's
// environment with a stress lane and x-gray-stress, and the marker header
// goes; the answer is built afresh for every marked request (never a
// reused one that would leave the marker on).
func TestStressMarkerAtTheEdge(t *testing.T) {
	p := meshPolicy(t)
	client := dial(t, New(p, slog.New(slog.DiscardHandler), nil))
	marker, err := p.Lanes.SignStress("shop-v2", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		stream, err := client.Process(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(requestHeaders(headers(wire.HeaderStressMarker, marker), "")); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		set, removed := mutation(t, resp)
		if set[wire.HeaderEnv] != "gray" || set[wire.HeaderReason] != "stress" || set[wire.HeaderStress] != "1" {
			t.Fatalf("set %v", set)
		}
		if l, err := p.Lanes.Verify(set[wire.HeaderLane], time.Now()); err != nil || !l.Stress {
			t.Fatalf("lane %+v, %v: not a stress lane", l, err)
		}
		if strings.Join(removed, ",") != wire.HeaderStressMarker {
			t.Fatalf("removed %v, want the marker", removed)
		}
	}
}
