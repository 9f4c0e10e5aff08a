package kube

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/api/v1alpha1"
)

// TestCRDMatchesTypes catches a CRD not regenerated after a change of the
// Go types (make crd): the schema's spec and status fields are the types'
// JSON fields, and every CEL rule is a transition rule.
func TestCRDMatchesTypes(t *testing.T) {
	b, err := os.ReadFile("../../../manifests/crd/graymesh.io_grayreleases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties  map[string]any
							Validations []struct{ Rule, Message string } `yaml:"x-kubernetes-validations"`
						}
					} `yaml:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != v1alpha1.Version {
		t.Fatalf("versions %+v", crd.Spec.Versions)
	}
	props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties
	for field, typ := range map[string]reflect.Type{"spec": reflect.TypeFor[v1alpha1.GrayReleaseSpec](), "status": reflect.TypeFor[v1alpha1.GrayReleaseStatus]()} {
		var want, got []string
		for i := range typ.NumField() {
			want = append(want, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		for k := range props[field].Properties {
			got = append(got, k)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("CRD %s fields %v, Go type %v: run make crd", field, got, want)
		}
	}
	// Which rules the messages name is checked against package gate's rule
	// table there (TestCRDNamesTableRules).
	if len(props["spec"].Validations) == 0 {
		t.Error("spec has no CEL rule")
	}
	for _, v := range props["spec"].Validations {
		if !strings.Contains(v.Rule, "oldSelf") || !strings.Contains(v.Rule, "self.change.rollback") {
			t.Errorf("rule %q is not a transition rule that yields to a declared rollback", v.Rule)
		}
	}
}
