package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/testing/golden"
)

// renderCases pins `graymesh render istio` output. The last case is the
// Istio overlay's routes, generated from the base manifests' config.
// Regenerate with: go test ./cmd/graymesh -run TestRenderIstio -update
var renderCases = []struct {
	name, config, namespace, golden string
}{
	{"basic", "testdata/render/basic.yaml", "", "testdata/render/basic.istio.golden.yaml"},
	{"weighted", "testdata/render/weighted.yaml", "shop", "testdata/render/weighted.istio.golden.yaml"},
	{"fine-weighted", "testdata/render/fine-weighted.yaml", "", "testdata/render/fine-weighted.istio.golden.yaml"},
	{"manifests", "../../manifests/base/graymesh.yaml", "shop", "../../manifests/overlays/istio/shop-routes.yaml"},
}

func TestRenderIstioGolden(t *testing.T) {
	golden.Own(t, "testdata/render/*.istio.golden.yaml")
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"render", "istio", "--config", tc.config}
			if tc.namespace != "" {
				args = append(args, "--namespace", tc.namespace)
			}
			code, got, errOut := runCLI(args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Check(t, tc.golden, []byte(got))
			checkIstioRoutes(t, []byte(got), tc.namespace)
		})
	}
}

// istioEnvelope is the Kubernetes part of an Istio object, decoded
// strictly. The spec is decoded separately with protojson into Istio's own
// API types (istio.io/api), which rejects unknown fields; the types'
// encoding/json methods would not (Istio's generated UnmarshalJSON allows
// unknown fields), and istio.io/client-go's wrappers add only this
// envelope at the cost of the Kubernetes client libraries.
type istioEnvelope struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// decodeIstio decodes a multi-document YAML stream into envelopes and
// Istio specs, failing on any field Istio's API does not have.
func decodeIstio(data []byte) ([]istioEnvelope, []proto.Message, error) {
	var envs []istioEnvelope
	var specs []proto.Message
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		j, err := json.Marshal(doc)
		if err != nil {
			return nil, nil, err
		}
		var env istioEnvelope
		jd := json.NewDecoder(bytes.NewReader(j))
		jd.DisallowUnknownFields()
		if err := jd.Decode(&env); err != nil {
			return nil, nil, err
		}
		if env.APIVersion != "networking.istio.io/v1" {
			return nil, nil, fmt.Errorf("%s %s: apiVersion %q", env.Kind, env.Metadata.Name, env.APIVersion)
		}
		var spec proto.Message
		switch env.Kind {
		case "VirtualService":
			spec = &networkingv1.VirtualService{}
		case "DestinationRule":
			spec = &networkingv1.DestinationRule{}
		default:
			return nil, nil, fmt.Errorf("unexpected kind %q", env.Kind)
		}
		if err := protojson.Unmarshal(env.Spec, spec); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", env.Kind, env.Metadata.Name, err)
		}
		envs = append(envs, env)
		specs = append(specs, spec)
	}
	return envs, specs, nil
}

// checkIstioRoutes decodes the output strictly and checks what makes the
// routes honour graymesh's decision.
func checkIstioRoutes(t *testing.T, data []byte, namespace string) {
	t.Helper()
	envs, specs, err := decodeIstio(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) == 0 || len(envs)%2 != 0 {
		t.Fatalf("%d objects, want a VirtualService and a DestinationRule per service", len(envs))
	}
	subsets := map[string]map[string]bool{}
	for i, spec := range specs {
		if envs[i].Metadata.Namespace != namespace {
			t.Errorf("%s %s: namespace %q, want %q", envs[i].Kind, envs[i].Metadata.Name, envs[i].Metadata.Namespace, namespace)
		}
		if dr, ok := spec.(*networkingv1.DestinationRule); ok {
			subsets[dr.GetHost()] = map[string]bool{}
			for _, s := range dr.GetSubsets() {
				if len(s.GetLabels()) != 1 {
					t.Errorf("subset %s/%s: labels %v", dr.GetHost(), s.GetName(), s.GetLabels())
				}
				subsets[dr.GetHost()][s.GetName()] = true
			}
			if !subsets[dr.GetHost()]["stable"] {
				t.Errorf("DestinationRule %s has no stable subset", dr.GetHost())
			}
		}
	}
	for i, spec := range specs {
		vs, ok := spec.(*networkingv1.VirtualService)
		if !ok {
			continue
		}
		name := envs[i].Metadata.Name
		if h := vs.GetHosts(); len(h) != 1 || h[0] != name {
			t.Errorf("VirtualService %s: hosts %v", name, h)
		}
		routes := vs.GetHttp()
		if len(routes) < 2 {
			t.Fatalf("VirtualService %s: %d routes", name, len(routes))
		}
		for j, r := range routes {
			last := j == len(routes)-1
			if last != (len(r.GetMatch()) == 0) {
				t.Errorf("VirtualService %s route %s: only the last route may match everything", name, r.GetName())
			}
			for _, m := range r.GetMatch() {
				if len(m.GetHeaders()) != 1 || m.GetHeaders()[wire.HeaderEnv] == nil {
					t.Errorf("VirtualService %s route %s: matches %v, want %s only", name, r.GetName(), m.GetHeaders(), wire.HeaderEnv)
				}
			}
			var sum int32
			for _, d := range r.GetRoute() {
				dest := d.GetDestination()
				if dest.GetHost() != name || !subsets[name][dest.GetSubset()] {
					t.Errorf("VirtualService %s route %s: destination %s/%s is not a subset of the DestinationRule", name, r.GetName(), dest.GetHost(), dest.GetSubset())
				}
				sum += d.GetWeight()
				if last && len(r.GetRoute()) > 1 {
					if got := d.GetHeaders().GetRequest().GetSet()[wire.HeaderEnv]; got != dest.GetSubset() {
						t.Errorf("VirtualService %s: weighted branch %s stamps %s=%q", name, dest.GetSubset(), wire.HeaderEnv, got)
					}
				}
			}
			if len(r.GetRoute()) > 1 && sum <= 0 {
				t.Errorf("VirtualService %s route %s: weights sum to %d", name, r.GetName(), sum)
			}
			if last && len(r.GetRoute()) == 1 {
				if got := r.GetHeaders().GetRequest().GetSet()[wire.HeaderEnv]; got != "stable" {
					t.Errorf("VirtualService %s: default route stamps %s=%q, want stable", name, wire.HeaderEnv, got)
				}
			}
		}
	}
}

func TestRenderIstioWeights(t *testing.T) {
	code, out, errOut := runCLI("render", "istio", "--config", "testdata/render/fine-weighted.yaml")
	if code != 0 {
		t.Fatal(errOut)
	}
	_, specs, err := decodeIstio([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	def := specs[0].(*networkingv1.VirtualService).GetHttp()[2]
	got := map[string]int32{}
	for _, d := range def.GetRoute() {
		got[d.GetDestination().GetSubset()] = d.GetWeight()
	}
	// 2.5% is 250 basis points of 10000.
	if got["stable"] != 9750 || got["gray"] != 250 {
		t.Fatalf("weights %v, want stable 9750, gray 250", got)
	}
}

func TestRenderIstioRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	underscore := write("underscore.yaml", "services:\n  - {name: my_shop, environments: {stable: [10.0.0.1:80]}}\n")
	invalid := write("invalid.yaml", "releases:\n  - {name: a, env: gray, percent: 120}\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no target", []string{"render"}, 2, "render istio"},
		{"unknown target", []string{"render", "linkerd"}, 2, "render istio"},
		{"no config", []string{"render", "istio"}, 2, "--config"},
		{"help", []string{"render", "--help"}, 0, "subset"},
		{"not a Kubernetes name", []string{"render", "istio", "--config", underscore}, 1, "services[0] (my_shop).name"},
		{"invalid config", []string{"render", "istio", "--config", invalid}, 1, "releases[0] (a).percent"},
	}
	for _, tc := range tests {
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

func TestDecodeIstioIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown spec field":     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], htpp: []}\n",
		"unknown metadata field": "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, nmespace: b}\nspec: {host: a}\n",
		"misspelt subset field":  "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a, subsets: [{name: s, label: {x: y}}]}\n",
	} {
		if _, _, err := decodeIstio([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
