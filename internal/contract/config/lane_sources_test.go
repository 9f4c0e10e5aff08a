package config

import (
	"strings"
	"testing"
)

const withInnerSidecar = `
lane: {key: lane-sources-test-key-0123456789abcdef}
services:
  - name: orders
    sidecar: {inbound_port: 10002, outbound_port: 15002}
    environments: {stable: [127.0.0.1:9202]}
`

func TestMeshCIDRs(t *testing.T) {
	for _, tc := range []struct {
		name, cidrs, err string
		warn             bool
	}{
		{"unset", "", "", true},
		{"set", "[10.8.0.0/16, 127.0.0.1/32, fd00::/8]", "", false},
		{"not a range", "[10.8.0.0]", "lane.mesh_cidrs[0]: \"10.8.0.0\" is not a CIDR range", false},
		{"host bits", "[127.0.0.1/32, 10.8.0.1/16]", "lane.mesh_cidrs[1]: \"10.8.0.1/16\" is not a CIDR range", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := withInnerSidecar
			if tc.cidrs != "" {
				doc = strings.Replace(doc, "lane: {", "lane: {mesh_cidrs: "+tc.cidrs+", ", 1)
			}
			cfg, err := Parse([]byte(doc), "t.yaml")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(strings.Join(cfg.Warnings(), "\n"), "lane.mesh_cidrs: empty")
			if warned != tc.warn {
				t.Fatalf("warnings %q, want the mesh_cidrs warning: %v", cfg.Warnings(), tc.warn)
			}
		})
	}
	edgeOnly := strings.Replace(withInnerSidecar, "outbound_port: 15002}", "outbound_port: 15002, edge: true}", 1)
	cfg, err := Parse([]byte(edgeOnly), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings(), "\n"); strings.Contains(w, "mesh_cidrs") {
		t.Fatalf("an edge-only mesh has no inner hop to protect, yet: %s", w)
	}
}
