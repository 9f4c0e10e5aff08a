package gray

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestInnerHopTakesLanesOnlyFromTheMesh: with lane.mesh_cidrs, an inner
// hop asked about a lane arriving from outside the ranges decides as its
// sidecar does, which removed the lane on arrival: stable, lane-missing,
// the lane not passed on. From inside the ranges, or with no address
// given, the lane is honoured.
func TestInnerHopTakesLanesOnlyFromTheMesh(t *testing.T) {
	doc := strings.Replace(strings.Replace(followConfig, "STATE", "active", 1),
		`lane: {key: "gray-test-lane-key-0123456789abcdef"}`,
		`lane: {key: "gray-test-lane-key-0123456789abcdef", mesh_cidrs: [10.8.0.0/16, 127.0.0.1/32]}`, 1)
	p := mustCompile(t, doc)
	now := time.Now()
	lane := p.Lanes.Sign("gray", "shop-v2", "1", now)
	for _, tc := range []struct {
		name, ip string
		env      string
		reason   Reason
		drops    bool
	}{
		{"from the mesh", "10.8.3.4", "gray", ReasonLane, false},
		{"from loopback in the ranges", "127.0.0.1", "gray", ReasonLane, false},
		{"IPv4-mapped, in the ranges", "::ffff:10.8.0.9", "gray", ReasonLane, false},
		{"address unknown", "", "gray", ReasonLane, false},
		{"from outside", "10.9.0.1", "", ReasonLaneMissing, true},
		{"from another loopback address", "127.0.0.2", "", ReasonLaneMissing, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Request{Hop: Hop{Inner: true, Service: "inventory"}, Lane: lane, Now: now}
			if tc.ip != "" {
				r.IP = netip.MustParseAddr(tc.ip)
			}
			o := p.Decide(r)
			if o.Env != tc.env || o.Reason != tc.reason || o.RemovesLane() != tc.drops {
				t.Fatalf("env %q reason %q removes the lane %v, want %q %q %v", o.Env, o.Reason, o.RemovesLane(), tc.env, tc.reason, tc.drops)
			}
		})
	}
}
