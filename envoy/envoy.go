// Package envoy holds the Envoy bootstrap files graymesh ships and reads
// them as Envoy's own bootstrap proto, so tests and harnesses start Envoy
// from the same files a user does, with only addresses rewritten.
package envoy

import (
	"embed"
	"encoding/json"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3" // types named by "@type" in the bootstrap files
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Files lists the bootstrap files in this package.
func Files() ([]string, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// Load parses the named bootstrap file and validates it.
func Load(name string) (*bootstrapv3.Bootstrap, error) {
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse reads Envoy bootstrap YAML strictly into the bootstrap proto and
// runs Envoy's proto validation.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, b); err != nil {
		return nil, err
	}
	if err := b.ValidateAll(); err != nil {
		return nil, err
	}
	return b, nil
}

// Overrides are what a harness changes in a bootstrap to run it beside
// others on one machine.
type Overrides struct {
	NodeID string
	// NodeCluster, for a sidecar, names its service.
	NodeCluster string
	AdminPort   uint32
	XDSHost     string
	XDSPort     uint32
}

// Render applies o to b and returns the bootstrap as JSON, which Envoy
// accepts as a config file.
func Render(b *bootstrapv3.Bootstrap, o Overrides) ([]byte, error) {
	if o.NodeID != "" {
		b.Node.Id = o.NodeID
	}
	if o.NodeCluster != "" {
		b.Node.Cluster = o.NodeCluster
	}
	if o.AdminPort != 0 {
		b.Admin.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: o.AdminPort}
	}
	if o.XDSPort != 0 {
		found := false
		for _, c := range b.GetStaticResources().GetClusters() {
			if c.GetName() != "graymesh_xds" {
				continue
			}
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			sa.Address = o.XDSHost
			sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: o.XDSPort}
			found = true
		}
		if !found {
			return nil, fmt.Errorf("bootstrap has no graymesh_xds cluster")
		}
	}
	if err := b.ValidateAll(); err != nil {
		return nil, err
	}
	return protojson.Marshal(b)
}
