package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/testing/golden"
)

// gatewayCases pin `graymesh render gateway-api` output; the real API
// server accepts each with the upstream CRDs (e2e
// TestManifestsAcceptedByTheAPIServer). Regenerate with:
// go test ./cmd/graymesh -run TestRenderGatewayAPI -update
var gatewayCases = []struct {
	name, golden string
	args         []string
}{
	{"basic", "testdata/render/basic.gateway-api.golden.yaml", []string{"--config", "testdata/render/basic.yaml"}},
	{"weighted", "testdata/render/weighted.gateway-api.golden.yaml", []string{"--config", "testdata/render/weighted.yaml", "--namespace", "shop"}},
	{"fine-weighted", "testdata/render/fine-weighted.gateway-api.golden.yaml", []string{"--config", "testdata/render/fine-weighted.yaml"}},
	{"manifests, a Gateway", "testdata/render/manifests.gateway-api.golden.yaml", []string{"--config", "../../manifests/base/graymesh.yaml",
		"--namespace", "shop", "--gateway", "edge", "--gateway-namespace", "gateways"}},
	{"Envoy Gateway Backends", "testdata/render/basic-backends.gateway-api.golden.yaml", []string{"--config", "testdata/render/basic.yaml",
		"--namespace", "shop", "--gateway", "edge", "--backends"}},
}

func TestRenderGatewayAPIGolden(t *testing.T) {
	golden.Own(t, "testdata/render/*.gateway-api.golden.yaml")
	for _, tc := range gatewayCases {
		t.Run(tc.name, func(t *testing.T) {
			code, got, errOut := runCLI(append([]string{"render", "gateway-api"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Check(t, tc.golden, []byte(got))
			checkHTTPRoutes(t, []byte(got))
		})
	}
}

// checkHTTPRoutes: every route's rules end with a default that matches
// everything, every backend is SERVICE-ENV, and a lone default backend
// stamps x-gray-env: stable.
func checkHTTPRoutes(t *testing.T, out []byte) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(out))
	routes := 0
	for {
		var obj struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Rules []struct {
					Matches []any `yaml:"matches"`
					Filters []struct {
						RequestHeaderModifier struct {
							Set []struct{ Name, Value string } `yaml:"set"`
						} `yaml:"requestHeaderModifier"`
					} `yaml:"filters"`
					BackendRefs []struct {
						Name string `yaml:"name"`
					} `yaml:"backendRefs"`
				} `yaml:"rules"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if obj.Kind != "HTTPRoute" {
			continue
		}
		routes++
		service, _, _ := strings.Cut(obj.Metadata.Name, "-")
		rules := obj.Spec.Rules
		if len(rules) == 0 || len(rules[len(rules)-1].Matches) != 0 {
			t.Fatalf("HTTPRoute %s: the last rule is not the default", obj.Metadata.Name)
		}
		for _, r := range rules {
			for _, b := range r.BackendRefs {
				if !strings.HasPrefix(b.Name, service+"-") {
					t.Errorf("HTTPRoute %s: backend %s is not %s-ENV", obj.Metadata.Name, b.Name, service)
				}
			}
		}
		if def := rules[len(rules)-1]; len(def.BackendRefs) == 1 {
			if len(def.Filters) != 1 || len(def.Filters[0].RequestHeaderModifier.Set) != 1 ||
				def.Filters[0].RequestHeaderModifier.Set[0].Name != wire.HeaderEnv || def.Filters[0].RequestHeaderModifier.Set[0].Value != "stable" {
				t.Errorf("HTTPRoute %s: the default does not stamp %s: stable: %+v", obj.Metadata.Name, wire.HeaderEnv, def.Filters)
			}
		}
	}
	if routes == 0 {
		t.Fatal("no HTTPRoute")
	}
}

func TestRenderGatewayAPIRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no config", []string{"render", "gateway-api"}, 2, "--config"},
		{"istio takes no gateway", []string{"render", "istio", "--config", "testdata/render/basic.yaml", "--gateway", "edge"}, 2, "Usage"},
		{"a Gateway without graymesh's Service", []string{"render", "gateway-api", "--config", "testdata/render/basic.yaml", "--gateway", "edge"}, 1, "--extproc-service"},
		{"a malformed Service", []string{"render", "gateway-api", "--config", "testdata/render/basic.yaml", "--gateway", "edge", "--extproc-service", "graymesh:18081"}, 1, "NAME.NAMESPACE:PORT"},
		{"not a port", []string{"render", "gateway-api", "--config", "testdata/render/basic.yaml", "--port", "0"}, 1, "port 0"},
		{"Backends without a Gateway", []string{"render", "gateway-api", "--config", "testdata/render/basic.yaml", "--backends"}, 1, "a mesh routes to Services"},
		{"Backends and a Service for graymesh", []string{"render", "gateway-api", "--config", "testdata/render/basic.yaml", "--gateway", "edge", "--backends", "--extproc-service", "graymesh.graymesh:18081"}, 2, "Usage"},
		{"istio takes no Backends", []string{"render", "istio", "--config", "testdata/render/basic.yaml", "--backends"}, 2, "Usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s", code, tc.code, tc.inStderr, errOut)
			}
			if code != 0 && out != "" {
				t.Fatalf("printed output on failure: %s", out)
			}
		})
	}
}
