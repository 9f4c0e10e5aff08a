package manifests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const chartDir = "chart/graymesh"

// helm is the Helm CLI, or the test skips — and fails under CI, where
// every part must be installed.
func helm(t *testing.T) string {
	t.Helper()
	bin, err := FindHelm()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: run %s", err, HelmInstall)
		}
		t.Skipf("%v: run %s", err, HelmInstall)
	}
	return bin
}

// TestHelmVersionMatchesTools keeps HelmVersion and the tools module that
// scripts/install-helm.sh builds from in step.
func TestHelmVersionMatchesTools(t *testing.T) {
	mod, err := os.ReadFile("../tools/helm/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if want := "helm.sh/helm/v4 " + HelmVersion + "\n"; !strings.Contains(string(mod), want) {
		t.Errorf("tools/helm/go.mod does not require %q", strings.TrimSpace(want))
	}
}

// TestChartLints runs `helm lint --strict` over the chart in both modes and
// with the maximal values file.
func TestChartLints(t *testing.T) {
	bin := helm(t)
	for _, args := range [][]string{
		nil,
		{"--set", "mode=kubernetes"},
		{"--values", "chart/testdata/maximal.yaml"},
	} {
		cmd := exec.Command(bin, append([]string{"lint", "--strict", chartDir}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
}

// TestChartRendersTheKustomizeBase: the chart with its defaults is the
// kustomize base, and with mode=kubernetes the base with the
// kubernetes-mode component — object for object, field for field, but
// for what only one of them can say (the Namespace the base creates and
// Helm leaves to --create-namespace, Helm's own labels and annotations,
// and the hash kustomize appends to the ConfigMap's name).
func TestChartRendersTheKustomizeBase(t *testing.T) {
	bin := helm(t)
	for _, tc := range []struct {
		mode       string
		components []string
	}{
		{"file", nil},
		{"kubernetes", []string{"components/kubernetes-mode"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			want, err := Compose([]string{"base"}, tc.components)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RenderChart(bin, chartDir, "graymesh", "--set", "mode="+tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			compareObjects(t, normalizeAll(t, want), normalizeAll(t, got))
		})
	}
}

// compareObjects reports each object only one side has and each field
// that differs, by path.
func compareObjects(t *testing.T, kustomize, chart map[string]any) {
	t.Helper()
	for _, key := range sortedKeys(kustomize) {
		c, ok := chart[key]
		if !ok {
			t.Errorf("the chart does not render %s", key)
			continue
		}
		for _, d := range diff(key, kustomize[key], c) {
			t.Error(d)
		}
	}
	for _, key := range sortedKeys(chart) {
		if _, ok := kustomize[key]; !ok {
			t.Errorf("the chart renders %s, the kustomize base does not", key)
		}
	}
}

var kustomizeHash = regexp.MustCompile(`"graymesh-config-[a-z0-9]{10}"`)

// normalizeAll keys each object by kind/namespace/name and drops what
// only one renderer can say.
func normalizeAll(t *testing.T, objs []Object) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, o := range objs {
		if o.Kind == "Namespace" {
			continue
		}
		data := kustomizeHash.ReplaceAll(o.JSON, []byte(`"graymesh-config"`))
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		dropHelmMetadata(v)
		name := strings.Trim(string(kustomizeHash.ReplaceAll([]byte(`"`+o.Name+`"`), []byte(`"graymesh-config"`))), `"`)
		out[fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, name)] = v
	}
	return out
}

// dropHelmMetadata removes Helm's bookkeeping from an object and its pod
// template.
func dropHelmMetadata(v map[string]any) {
	metas := []any{v["metadata"]}
	if spec, ok := v["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			metas = append(metas, tmpl["metadata"])
		}
	}
	for _, m := range metas {
		meta, ok := m.(map[string]any)
		if !ok {
			continue
		}
		for field, keys := range map[string][]string{
			"labels":      {"helm.sh/chart", "app.kubernetes.io/managed-by"},
			"annotations": {"checksum/config", "helm.sh/resource-policy"},
		} {
			set, ok := meta[field].(map[string]any)
			if !ok {
				continue
			}
			for _, k := range keys {
				delete(set, k)
			}
			if len(set) == 0 {
				delete(meta, field)
			}
		}
	}
}

// diff lists the paths at which a and b differ.
func diff(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for _, k := range sortedKeys(keys) {
			out = append(out, diff(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	return []string{fmt.Sprintf("%s: kustomize %s, chart %s", path, aj, bj)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestChartPortsReachTheConfig: moving the ports or the namespace moves
// them everywhere the pods are reached — the default config's listeners
// and the ext_proc address it hands Envoys, the container ports, the
// Service and the NetworkPolicy — so graymesh listens where it is called.
func TestChartPortsReachTheConfig(t *testing.T) {
	bin := helm(t)
	objs, err := RenderChart(bin, chartDir, "platform", "--set",
		"ports.extproc=19081,ports.xds=19000,ports.admin=19080,networkPolicy.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, o := range objs {
		text.Write(o.JSON)
	}
	all := text.String()
	for _, old := range []string{"18081", "18000", "18080", "graymesh.graymesh.svc"} {
		if strings.Contains(all, old) {
			t.Errorf("the chart still renders %s", old)
		}
	}
	for _, want := range []string{
		`extproc_listen: 0.0.0.0:19081`, `xds_listen: 0.0.0.0:19000`, `admin_listen: 0.0.0.0:19080`,
		`extproc_address: graymesh.platform.svc.cluster.local:19081`,
		`"containerPort":19081`, `"port":19081`, `{"port":19000,"protocol":"TCP"}`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the chart does not render %s", want)
		}
	}
}
