package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/manifests"
)

// upstreamCRDs are the CRDs of other projects that graymesh's manifests and
// rendered objects use, taken from those projects' Go modules (the module
// cache keeps them, like every Go dependency): Gateway API's standard
// channel, Istio's networking kinds, Envoy Gateway's policies and the
// Prometheus Operator's PodMonitor (the chart's podMonitor.enabled).
var upstreamCRDs = []struct {
	module string
	// glob selects the CRD files inside the module.
	glob string
}{
	{"sigs.k8s.io/gateway-api@v1.6.3", "config/crd/standard/gateway.networking.k8s.io_*.yaml"},
	{"istio.io/api@v1.31.1", "kubernetes/customresourcedefinitions.gen.yaml"},
	{"github.com/envoyproxy/gateway@v1.9.1", "charts/gateway-crds-helm/templates/generated/*.yaml"},
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"},
}

// moduleDir downloads module@version into the module cache (a no-op when it
// is there) and returns its directory.
func moduleDir(t *testing.T, modver string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", modver)
	cmd.Dir = t.TempDir() // outside graymesh's module: go.mod stays as it is
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s %s (the upstream CRDs come from the Go module proxy)", modver, err, m.Error, out)
	}
	return m.Dir
}

// installUpstreamCRDs applies every upstream CRD for real and waits until
// each is served. Envoy Gateway ships its CRDs as Helm templates, wrapped in
// one {{- if }} … {{- end }} each: those lines are dropped.
func installUpstreamCRDs(t *testing.T, k *kubeCP) {
	t.Helper()
	for _, u := range upstreamCRDs {
		files, err := filepath.Glob(filepath.Join(moduleDir(t, u.module), u.glob))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no %s (%v)", u.module, u.glob, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			must(t, err)
			var kept []string
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "{{") {
					kept = append(kept, line)
				}
			}
			k.mustKubectl(strings.Join(kept, "\n"), "apply", "--server-side", "--field-manager=graymesh-e2e", "-f", "-")
		}
	}
	k.mustKubectl("", "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
}

// manifestSet is one set of objects a user would apply.
type manifestSet struct {
	name string
	yaml string
	// rbac are its Roles and ClusterRoles.
	rbac []manifests.Object
}

// kustomizeSets are the base, every overlay, and the kubernetes-mode
// component on the base and on the sidecars overlay, as kustomize builds
// them.
func kustomizeSets(t *testing.T) []manifestSet {
	t.Helper()
	overlays, err := manifests.Overlays()
	must(t, err)
	var out []manifestSet
	add := func(name string, objs []manifests.Object, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, setOf(name, objs))
	}
	for _, dir := range append([]string{"base"}, overlays...) {
		objs, err := manifests.Build(dir)
		add(dir, objs, err)
	}
	for _, r := range []string{"base", "overlays/graymesh-sidecars"} {
		objs, err := manifests.Compose([]string{r}, []string{"components/kubernetes-mode"})
		add(r+" + components/kubernetes-mode", objs, err)
	}
	return out
}

// setOf is objs as one YAML stream.
func setOf(name string, objs []manifests.Object) manifestSet {
	s := manifestSet{name: name}
	docs := make([]string, 0, len(objs))
	for _, o := range objs {
		docs = append(docs, string(o.JSON))
		if o.Kind == "Role" || o.Kind == "ClusterRole" {
			s.rbac = append(s.rbac, o)
		}
	}
	s.yaml = strings.Join(docs, "\n---\n")
	return s
}

// renderedSets are the pinned outputs of graymesh render (istio and
// gateway-api), as a user applies them.
func renderedSets(t *testing.T) []manifestSet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "cmd", "graymesh", "testdata", "render", "*.golden.yaml"))
	must(t, err)
	if len(files) < 6 {
		t.Fatalf("only %d rendered goldens: %v", len(files), files)
	}
	var out []manifestSet
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		out = append(out, manifestSet{name: "render " + filepath.Base(f), yaml: string(b)})
	}
	return out
}

// chartSets are the Helm chart's output (helm template, as `helm install`
// would apply it) with its defaults in both modes and with the maximal
// values file, in the namespace it names.
func chartSets(t *testing.T) []manifestSet {
	t.Helper()
	helm, err := manifests.FindHelm()
	if err != nil {
		missingPart(t, err, manifests.HelmInstall)
	}
	chart := filepath.Join(repoRoot, "manifests", "chart", "graymesh")
	var out []manifestSet
	for _, c := range []struct {
		name, namespace string
		flags           []string
	}{
		{"chart (defaults)", "graymesh", nil},
		{"chart (mode=kubernetes)", "graymesh", []string{"--set", "mode=kubernetes"}},
		{"chart (maximal values)", "platform", []string{"--values", filepath.Join(repoRoot, "manifests", "chart", "testdata", "maximal.yaml")}},
	} {
		objs, err := manifests.RenderChart(helm, chart, c.namespace, c.flags...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, setOf(c.name, objs))
	}
	return out
}

// servedResources are the API server's resources as RBAC names them:
// "configmaps", "leases.coordination.k8s.io".
func servedResources(t *testing.T, k *kubeCP) map[string]bool {
	t.Helper()
	out := k.mustKubectl("", "api-resources", "-o", "name")
	served := map[string]bool{}
	for _, name := range strings.Fields(out) {
		served[name] = true
	}
	return served
}

// unservedRules lists each rule resource of a Role or ClusterRole that the
// API server does not serve: a typo or a group that is not installed, which
// the API server accepts in a Role and then never matches.
func unservedRules(o manifests.Object, served map[string]bool) ([]string, error) {
	var role struct {
		Rules []struct {
			APIGroups       []string `json:"apiGroups"`
			Resources       []string `json:"resources"`
			NonResourceURLs []string `json:"nonResourceURLs"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(o.JSON, &role); err != nil {
		return nil, err
	}
	var missing []string
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				res, _, _ = strings.Cut(res, "/")
				if g == "*" || res == "*" {
					continue
				}
				name := res
				if g != "" {
					name += "." + g
				}
				if !served[name] {
					missing = append(missing, fmt.Sprintf("%s %s: %s", o.Kind, o.Name, name))
				}
			}
		}
	}
	return missing, nil
}

// TestManifestsAcceptedByTheAPIServer applies everything a user would —
// the kustomize base, every overlay, the kubernetes-mode component, the Helm
// chart (defaults in both modes, every value set), and the output of
// graymesh render istio and gateway-api — to the real
// kube-apiserver, server-side with a dry run and strict field validation,
// after installing the CRDs they use from their upstream modules. A wrong
// field, a bad enum or an unknown kind fails here as it would fail a user;
// so does an RBAC rule naming a resource the API server does not serve. A
// deliberately broken DaemonSet and a Role naming a made-up resource show
// that both checks can fail.
func TestManifestsAcceptedByTheAPIServer(t *testing.T) {
	k := startKube(t)
	// The namespaces the objects name; istio-system is Istio's own,
	// platform the maximal chart values' release namespace.
	for _, ns := range []string{"graymesh", "shop", "gateways", "istio-system", "platform"} {
		k.mustKubectl("", "create", "namespace", ns)
	}
	k.mustKubectl("", "apply", "--server-side", "--field-manager=graymesh-e2e", "-f", filepath.Join(repoRoot, "manifests", "crd", "graymesh.io_grayreleases.yaml"))
	installUpstreamCRDs(t, k)
	served := servedResources(t, k)
	dryRun := func(yaml string) (string, error) {
		return k.kubectl(yaml, "apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=graymesh-e2e", "-f", "-")
	}

	sets := append(append(kustomizeSets(t), renderedSets(t)...), chartSets(t)...)
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) {
			if out, err := dryRun(s.yaml); err != nil {
				t.Fatalf("the API server refuses %s: %v\n%s", s.name, err, out)
			}
			for _, o := range s.rbac {
				missing, err := unservedRules(o, served)
				must(t, err)
				if len(missing) > 0 {
					t.Errorf("%s: RBAC rules name resources the API server does not serve: %v", s.name, missing)
				}
			}
		})
	}

	// The checks can fail: a field the DaemonSet does not have, and a
	// Role naming a resource nobody serves.
	base := sets[0]
	broken := strings.Replace(base.yaml, `"dnsPolicy":`, `"dnsPolicyy":`, 1)
	if broken == base.yaml {
		broken = strings.Replace(base.yaml, `"containers":[`, `"bogusField":1,"containers":[`, 1)
	}
	if broken == base.yaml {
		t.Fatal("found nothing to break in the base")
	}
	if out, err := dryRun(broken); err == nil {
		t.Errorf("the API server accepted a DaemonSet with an unknown field:\n%s", out)
	}
	fake := manifests.Object{Kind: "Role", Name: "typo", JSON: []byte(`{"rules":[{"apiGroups":["graymesh.io"],"resources":["grayrelease"]},{"apiGroups":[""],"resources":["configmaps"]}]}`)}
	if missing, err := unservedRules(fake, served); err != nil || !slices.Equal(missing, []string{"Role typo: grayrelease.graymesh.io"}) {
		t.Errorf("a rule naming grayrelease (singular) was reported as %v (%v)", missing, err)
	}
	t.Logf("%d sets accepted by the real API server (dry run, strict), with %d resources served", len(sets), len(served))
}
