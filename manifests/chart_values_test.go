package manifests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/internal/testing/golden"
)

// chartValue is one documented value of the chart: a leaf of
// values.schema.json (a property without properties of its own).
type chartValue struct {
	path        string
	description string
	def         any // from values.yaml
	maximal     any // from testdata/maximal.yaml
}

// chartValues reads the schema, the defaults and the maximal values file.
func chartValues(t *testing.T) []chartValue {
	t.Helper()
	var schema map[string]any
	var defaults, maximal map[string]any
	readJSON(t, chartDir+"/values.schema.json", &schema)
	readYAML(t, chartDir+"/values.yaml", &defaults)
	readYAML(t, "chart/testdata/maximal.yaml", &maximal)
	var out []chartValue
	var walk func(node map[string]any, prefix string)
	walk = func(node map[string]any, prefix string) {
		props, _ := node["properties"].(map[string]any)
		for _, k := range sortedKeys(props) {
			p := props[k].(map[string]any)
			path := prefix + k
			if _, nested := p["properties"]; nested {
				walk(p, path+".")
				continue
			}
			desc, _ := p["description"].(string)
			out = append(out, chartValue{path: path, description: desc, def: lookup(defaults, path), maximal: lookup(maximal, path)})
		}
	}
	walk(schema, "")
	return out
}

func lookup(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

const (
	tableStart = "<!-- values: generated from values.schema.json and values.yaml by `go test ./manifests -run TestChartReadme -update` -->\n"
	tableEnd   = "<!-- end of values -->\n"
)

// TestChartReadme: the chart README's table lists every value the schema
// knows, with its description and its default from values.yaml; every
// value has both and the maximal values file sets it.
func TestChartReadme(t *testing.T) {
	values := chartValues(t)
	var table strings.Builder
	table.WriteString("| Value | Default | Description |\n|---|---|---|\n")
	for _, v := range values {
		if v.description == "" {
			t.Errorf("%s has no description in values.schema.json", v.path)
		}
		if v.def == nil {
			t.Errorf("%s has no default in values.yaml", v.path)
		}
		if v.maximal == nil {
			t.Errorf("%s is not set in chart/testdata/maximal.yaml", v.path)
		}
		def, err := json.Marshal(v.def)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "| `%s` | `%s` | %s |\n", v.path, def, strings.ReplaceAll(v.description, "|", `\|`))
	}
	path := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no values table between %q and %q", path, tableStart, tableEnd)
	}
	golden.Check(t, path, []byte(before+tableStart+table.String()+tableEnd+after))
}

// TestEveryChartValueMatters sets each value alone to the maximal file's
// setting (in kubernetes mode, where every value has something to act on)
// and checks that the rendered objects change: a value nothing reads, or a
// template that ignores it, fails here.
func TestEveryChartValueMatters(t *testing.T) {
	bin := helm(t)
	// What a value needs to act at all.
	needs := map[string]string{"podMonitor.interval": "podMonitor.enabled=true"}
	for _, v := range chartValues(t) {
		if reflect.DeepEqual(v.def, v.maximal) || v.path == "mode" {
			continue
		}
		val, err := json.Marshal(v.maximal)
		if err != nil {
			t.Fatal(err)
		}
		sets := "mode=kubernetes"
		if n := needs[v.path]; n != "" {
			sets += "," + n
		}
		base, err := RenderChart(bin, chartDir, "graymesh", "--set", sets)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RenderChart(bin, chartDir, "graymesh", "--set", sets, "--set-json", v.path+"="+string(val))
		if err != nil {
			t.Errorf("%s=%s: %v", v.path, val, err)
			continue
		}
		if reflect.DeepEqual(objectsJSON(base), objectsJSON(got)) {
			t.Errorf("%s=%s renders the same objects as its default", v.path, val)
		}
	}
}

func objectsJSON(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = string(o.JSON)
	}
	return out
}
