package gate

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

// crdDir holds the generated CRDs (make crd).
const crdDir = "../../../manifests/crd"

// celRule is how a CEL validation message names its rule: "rule ID: …",
// the shape of Eviction.Error.
var celRule = regexp.MustCompile(`^rule ([a-z-]+): `)

// TestCRDNamesTableRules checks the rule table against the CRD the API
// server validates GrayRelease objects with: every CEL validation names a
// rule of the table in its message, every rule marked CEL is checked
// there, and no rule the table leaves to graymesh is.
func TestCRDNamesTableRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRD in %s: %v", crdDir, err)
	}
	inCRD := map[Rule]bool{}
	for _, file := range files {
		for _, v := range celValidations(t, file) {
			m := celRule.FindStringSubmatch(v["message"])
			if m == nil {
				t.Errorf("%s: CEL validation %q: message %q does not start with \"rule ID: \"", file, v["rule"], v["message"])
				continue
			}
			if !inTable(Rule(m[1])) {
				t.Errorf("%s: CEL message names rule %s, which is not in the table (gate/rules.go)", file, m[1])
			}
			inCRD[Rule(m[1])] = true
		}
	}
	for _, r := range Rules() {
		switch {
		case r.CEL && !inCRD[r.ID]:
			t.Errorf("rule %s is marked CEL but no CEL validation of the CRD names it (markers in kube/v1alpha1, then make crd)", r.ID)
		case !r.CEL && inCRD[r.ID]:
			t.Errorf("rule %s is checked by the CRD's CEL but not marked CEL in the table", r.ID)
		}
	}
	if len(inCRD) == 0 {
		t.Error("the CRD has no CEL validation")
	}
}

// celValidations returns every x-kubernetes-validations item of a YAML
// file, at any depth, as its string fields.
func celValidations(t *testing.T, file string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []map[string]string
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			for k, v := range n {
				if k == "x-kubernetes-validations" {
					out = append(out, validationItems(t, file, v)...)
					continue
				}
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(doc)
	return out
}

func validationItems(t *testing.T, file string, v any) []map[string]string {
	t.Helper()
	items, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: x-kubernetes-validations is not a list", file)
	}
	var out []map[string]string
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			t.Fatalf("%s: x-kubernetes-validations item %v is not a map", file, it)
		}
		fields := map[string]string{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				fields[k] = s
			}
		}
		out = append(out, fields)
	}
	return out
}
