package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// outsideMesh is a loopback address outside the example's lane.mesh_cidrs
// (127.0.0.1/32): a caller that reaches the sidecars' ports without being
// one of the mesh's sidecars or services.
const outsideMesh = "127.0.0.2"

// TestMeshLanesOnlyFromTheMesh: with lane.mesh_cidrs (the example sets
// 127.0.0.1/32), a genuine lane replayed at a sidecar from an address
// outside the ranges is removed on arrival, in Envoy, by every listener a
// lane could enter a chain through: the inner listener serves stable and
// hands its callees no lane; the outbound and fallback listeners pass none
// on. The same lane from the mesh's address is honoured, and explain
// --inner --ip agrees with the sidecar either way.
func TestMeshLanesOnlyFromTheMesh(t *testing.T) {
	example, err := os.ReadFile(filepath.Join(repoRoot, "examples", "mesh.yaml"))
	must(t, err)
	if !strings.Contains(string(example), "mesh_cidrs: [127.0.0.1/32]") {
		t.Fatal("examples/mesh.yaml no longer sets the mesh_cidrs this test relies on")
	}
	m := newFourHop(t)
	signer, err := lane.NewSigner([]byte(m.laneKey), time.Minute)
	must(t, err)
	genuine := withLane(signer.Sign("gray", "shop-v2", "7", time.Now()))
	tests := []struct {
		name, from, host string
		port             int
		want, reason     string
	}{
		{"inner, from the mesh", meshAddress, "", m.ports[innerPorts["orders"]], grayFromOrders, "lane"},
		{"inner, from outside", outsideMesh, "", m.ports[innerPorts["orders"]], stableFromOrders, "lane-missing"},
		{"outbound, from the mesh", meshAddress, "inventory", m.ports[15002], "inventory:stable pricing:gray", "lane"},
		{"outbound, from outside", outsideMesh, "inventory", m.ports[15002], "inventory:stable pricing:stable", "lane-missing"},
		{"fallback, from the mesh", meshAddress, "", m.ports[16002], "orders:stable inventory:stable pricing:gray", ""},
		{"fallback, from outside", outsideMesh, "", m.ports[16002], stableFromOrders, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := sendFrom(tt.from, tt.port, tt.host, genuine)
			must(t, err)
			if got := strings.Join(r.hops(), " "); got != tt.want {
				t.Fatalf("chain %s, want %s (first hop saw %v)", got, tt.want, r.Gray)
			}
			if tt.reason != "" && r.Gray[wire.HeaderReason] != tt.reason {
				t.Fatalf("reason %q, want %q (first hop saw %v)", r.Gray[wire.HeaderReason], tt.reason, r.Gray)
			}
		})
	}
	// explain --inner --ip says what orders' sidecar did, from either side.
	for _, from := range []string{meshAddress, outsideMesh} {
		r, err := sendFrom(from, m.ports[innerPorts["orders"]], "", genuine)
		must(t, err)
		ex, err := m.explainInForce("--inner", "--service", "orders", "--lane", genuine[wire.HeaderLane], "--ip", from)
		must(t, err)
		agrees(t, "a lane from "+from, r, ex)
	}
}
