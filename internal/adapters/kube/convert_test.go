package kube

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/graymesh/graymesh/api/v1alpha1"
	"github.com/graymesh/graymesh/internal/contract/config"
)

// TestSpecIsAReleaseItem keeps the CRD's spec exactly the file's
// releases[] item: every field of config.Release but name has a spec field
// of the same (YAML = JSON) name, and the spec adds only effective_at and
// change.
func TestSpecIsAReleaseItem(t *testing.T) {
	names := func(typ reflect.Type, tag string) map[string]bool {
		out := map[string]bool{}
		for i := range typ.NumField() {
			n := strings.Split(typ.Field(i).Tag.Get(tag), ",")[0]
			out[n] = true
		}
		return out
	}
	file := names(reflect.TypeFor[config.Release](), "yaml")
	spec := names(reflect.TypeFor[v1alpha1.GrayReleaseSpec](), "json")
	delete(file, "name")
	delete(file, "-") // filled in by graymesh, never read from a file
	for n := range file {
		if !spec[n] {
			t.Errorf("releases[].%s has no GrayRelease spec.%s", n, n)
		}
	}
	for n := range spec {
		if !file[n] && n != "effective_at" && n != "change" {
			t.Errorf("GrayRelease spec.%s is not a releases[] field", n)
		}
	}
}

func TestRelease(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	tol := 2.0
	tests := []struct {
		name string
		spec v1alpha1.GrayReleaseSpec
		want config.Release
	}{
		{
			name: "defaults like the file",
			spec: v1alpha1.GrayReleaseSpec{Env: "gray", Percent: 10},
			want: config.Release{Name: "checkout", Env: "gray", Salt: "checkout", Percent: 10, State: config.StateActive},
		},
		{
			name: "every kind of field",
			spec: v1alpha1.GrayReleaseSpec{
				Env: "gray", Salt: "s1", Whitelist: []string{"alice"}, Blacklist: []string{"bob"},
				Claims:  []v1alpha1.ClaimMatcher{{Claim: "tier", In: []string{"beta"}}},
				CIDRs:   []string{"10.0.0.0/8"},
				Headers: []v1alpha1.HeaderMatcher{{Name: "x-canary", Exact: "1"}},
				Percent: 5, TrafficPercent: 1, State: "frozen",
				Schedule: []v1alpha1.Step{{At: at, Percent: 20}},
				Analysis: &v1alpha1.Analysis{Interval: "45s", Errors: &v1alpha1.ErrorAnalysis{Tolerance: &tol},
					Source: "prometheus", PrometheusURL: "http://prom:9090", PrometheusLabels: map[string]string{"job": "envoy"}},
				Change: &v1alpha1.Change{Rollback: true, Reason: "ignored here"},
			},
			want: config.Release{
				Name: "checkout", Env: "gray", Salt: "s1", Whitelist: []string{"alice"}, Blacklist: []string{"bob"},
				Claims:  []config.ClaimMatcher{{Claim: "tier", In: []string{"beta"}}},
				CIDRs:   []string{"10.0.0.0/8"},
				Headers: []config.HeaderMatcher{{Name: "x-canary", Exact: "1"}},
				Percent: 5, TrafficPercent: 1, State: config.StateFrozen,
				Schedule: []config.Step{{At: at.Time, Percent: 20}},
				Analysis: &config.Analysis{Interval: config.Duration{Duration: 45 * time.Second}, Errors: config.ErrorAnalysis{Tolerance: &tol},
					Source: "prometheus", PrometheusURL: "http://prom:9090", PrometheusLabels: map[string]string{"job": "envoy"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Release("checkout", &tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Analysis != nil {
				tt.want.Analysis.ApplyDefaults()
			}
			if len(got.Schedule) != len(tt.want.Schedule) {
				t.Fatalf("schedule: got %v, want %v", got.Schedule, tt.want.Schedule)
			}
			for i := range got.Schedule {
				if !got.Schedule[i].At.Equal(tt.want.Schedule[i].At) {
					t.Errorf("schedule[%d].at: got %v, want %v", i, got.Schedule[i].At, tt.want.Schedule[i].At)
				}
				got.Schedule[i].At = tt.want.Schedule[i].At
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
