package extproc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/lane"
	"github.com/graymesh/graymesh/wire"
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

	// Edge: alice is whitelisted; a forged lane the client sent is replaced.
	set, _ := call(wire.HopEdge, "frontend", "authorization", "Bearer "+token(t, "alice"), "baggage", "userId=alice,graymesh-lane=v1:gray:x:y:9999999999:forged")
	if set[wire.HeaderEnv] != "gray" || set[wire.HeaderFallback] != "no-gray-version" {
		t.Fatalf("edge set %v", set)
	}
	bag := set[wire.HeaderBaggage]
	if !strings.HasPrefix(bag, "userId=alice,graymesh-lane=v1:gray:shop-v2:") || strings.Contains(bag, "forged") {
		t.Fatalf("edge baggage %q", bag)
	}

	// Inner hop with the edge's baggage: honours the lane, keeps baggage.
	set, removed := call(wire.HopInner, "orders", "baggage", bag)
	if set[wire.HeaderEnv] != "gray" || set[wire.HeaderReason] != "lane" || set[wire.HeaderRelease] != "shop-v2" {
		t.Fatalf("inner set %v", set)
	}
	if _, touched := set[wire.HeaderBaggage]; touched || len(removed) != 0 {
		t.Fatalf("inner hop rewrote a valid baggage: set %v removed %v", set, removed)
	}

	// Inner hop with a forged lane: stable, forged member dropped.
	forged := strings.Replace(bag, ":gray:", ":canary:", 1)
	set, _ = call(wire.HopInner, "orders", "baggage", forged)
	if set[wire.HeaderEnv] != "stable" || set[wire.HeaderReason] != string(lane.ErrSignature.Error()) {
		t.Fatalf("forged lane set %v", set)
	}
	if set[wire.HeaderBaggage] != "userId=alice" {
		t.Fatalf("forged member passed on: %q", set[wire.HeaderBaggage])
	}

	// No lane at all, and a spoofed x-gray-env: stable.
	set, removed = call(wire.HopInner, "orders", wire.HeaderEnv, "gray")
	if set[wire.HeaderEnv] != "stable" || set[wire.HeaderReason] != "lane-missing" || len(removed) != 0 {
		t.Fatalf("no lane: set %v removed %v", set, removed)
	}

	// An expired lane: stable.
	s, _ := lane.NewSigner([]byte("mesh-key-0123456789abcdef-0123456789"), time.Second)
	old := s.Sign("gray", "shop-v2", "v", time.Now().Add(-time.Hour))
	set, _ = call(wire.HopInner, "orders", "baggage", "graymesh-lane="+old)
	if set[wire.HeaderEnv] != "stable" || set[wire.HeaderReason] != "lane-expired" {
		t.Fatalf("expired lane set %v", set)
	}
}
