package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins the generated xDS resources for each config in testdata.
// Regenerate with: go test ./xds -run TestGolden -update
func TestGolden(t *testing.T) {
	configs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(configs) == 0 {
		t.Fatalf("no testdata configs: %v", err)
	}
	for _, path := range configs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			groups, err := BuildAll(loadPlan(t, path))
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, name := range sortedKeys(groups) {
				if err := groups[name].Validate(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got = append(got, []byte("// group "+name+"\n")...)
				got = append(got, render(t, groups[name])...)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("resources differ from %s; rerun with -update after checking the diff:\n%s", golden, got)
			}
		})
	}
}

func sortedKeys(m map[string]*Resources) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func render(t *testing.T, r *Resources) []byte {
	t.Helper()
	doc := map[string][]json.RawMessage{}
	add := func(kind string, m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// protojson randomises whitespace; normalise it.
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			t.Fatal(err)
		}
		doc[kind] = append(doc[kind], buf.Bytes())
	}
	for _, c := range r.Clusters {
		add("clusters", c)
	}
	for _, rc := range r.Routes {
		add("routes", rc)
	}
	for _, l := range r.Listeners {
		add("listeners", l)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestSnapshotVersionIsContentHash(t *testing.T) {
	a, b := loadPlan(t, "testdata/demo.yaml"), loadPlan(t, "testdata/weighted.yaml")
	version := func(p *plan.Plan) string {
		res, err := Build(p)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := res.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap.GetVersion("type.googleapis.com/envoy.config.listener.v3.Listener")
	}
	if va1, va2, vb := version(a), version(a), version(b); va1 != va2 || va1 == vb {
		t.Fatalf("versions %s %s %s", va1, va2, vb)
	}
}

func TestWeightedRoute(t *testing.T) {
	res, err := Build(loadPlan(t, "testdata/weighted.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	vhs := res.Routes[0].GetVirtualHosts()
	def := vhs[0].GetRoutes()[len(vhs[0].GetRoutes())-1]
	wc := def.GetRoute().GetWeightedClusters().GetClusters()
	if len(wc) != 2 || wc[0].GetWeight().GetValue() != 8750 || wc[1].GetWeight().GetValue() != 1250 {
		t.Fatalf("weights %v", wc)
	}
	if h := wc[1].GetRequestHeadersToAdd()[0].GetHeader(); h.GetKey() != "x-gray-env" || h.GetValue() != "canary" {
		t.Fatalf("canary branch adds %v", h)
	}
	// search has no canary: its default stays plain stable.
	sdef := vhs[1].GetRoutes()[len(vhs[1].GetRoutes())-1]
	if sdef.GetRoute().GetCluster() != "search|stable" {
		t.Fatalf("search default %v", sdef.GetRoute())
	}
	// A hostname endpoint makes the cluster STRICT_DNS.
	for _, c := range res.Clusters {
		if c.GetName() == "checkout|canary" && c.GetType().String() != "STRICT_DNS" {
			t.Fatalf("checkout|canary type %v", c.GetType())
		}
	}
}

func loadPlan(t *testing.T, path string) *plan.Plan {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
