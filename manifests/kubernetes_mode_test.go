package manifests

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestKubernetesModeComponent builds an overlay of one's own with the
// kubernetes-mode component, as docs/kubernetes.md tells, and checks that
// it installs the CRD, starts graymesh with --kube and grants exactly the
// least privilege Kubernetes mode needs, in the namespace only.
func TestKubernetesModeComponent(t *testing.T) {
	objs, err := kustomize("mine", map[string]string{"mine/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../overlays/graymesh-sidecars]
components: [../components/kubernetes-mode]
`})
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]Object{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
		// An object of the component without a namespace would land in
		// the user's default namespace, and its references to the base's
		// generated ConfigMap would keep the unhashed name.
		if namespaced := o.Kind != "Namespace" && o.Kind != "CustomResourceDefinition"; namespaced && o.Namespace != "graymesh" {
			t.Errorf("%s %s is in namespace %q, not graymesh", o.Kind, o.Name, o.Namespace)
		}
	}
	if crds := byKind["CustomResourceDefinition"]; len(crds) != 1 || crds[0].Name != "grayreleases.graymesh.io" {
		t.Errorf("CRDs: %+v", crds)
	}
	if n := len(byKind["ClusterRole"]) + len(byKind["ClusterRoleBinding"]); n > 0 {
		t.Errorf("%d cluster-wide RBAC objects", n)
	}
	checkRoles(t, byKind)
	checkSelectors(t, byKind)
	var dep appsv1.Deployment
	for _, o := range byKind["Deployment"] {
		if o.Name == "graymesh-controller" {
			must(t, json.Unmarshal(o.JSON, &dep))
		}
	}
	if dep.Name != "graymesh-controller" {
		t.Fatal("no graymesh-controller Deployment")
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 ||
		dep.Spec.Template.Spec.ServiceAccountName != "graymesh-controller" || dep.Spec.Template.Spec.Containers[0].Args[0] != "controller" {
		t.Errorf("controller Deployment %s: %d replicas, service account %s, args %v", dep.Name, *dep.Spec.Replicas,
			dep.Spec.Template.Spec.ServiceAccountName, dep.Spec.Template.Spec.Containers[0].Args)
	}
	if cfg := dep.Spec.Template.Spec.Volumes[0].Projected.Sources[0].ConfigMap.Name; !strings.HasPrefix(cfg, "graymesh-config-") {
		t.Errorf("the controller reads ConfigMap %q, not the nodes' generated graymesh-config", cfg)
	}
	var ds appsv1.DaemonSet
	must(t, json.Unmarshal(byKind["DaemonSet"][0].JSON, &ds))
	pod := ds.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("the pod mounts no token: it cannot reach the API server")
	}
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "--kube") || !slices.Contains(c.Args, "--kube-role=node") {
		t.Errorf("args %v lack --kube --kube-role=node", c.Args)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("env %v lacks NODE_NAME from spec.nodeName", c.Env)
	}
	var sa corev1.ServiceAccount
	must(t, json.Unmarshal(byKind["ServiceAccount"][0].JSON, &sa))
	if sa.AutomountServiceAccountToken == nil || !*sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount mounts no token")
	}
}

// checkRoles: every role gets its own least privilege, bound to its own
// ServiceAccount; a node pod never patches a GrayRelease or its status,
// the controller does both.
func checkRoles(t *testing.T, byKind map[string][]Object) {
	t.Helper()
	read := []string{"get", "list", "watch"}
	configMaps := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "update"}},
	}
	leases := rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "create", "update"}}
	want := map[string][]rbacv1.PolicyRule{
		"graymesh-node": append([]rbacv1.PolicyRule{
			{APIGroups: []string{"graymesh.io"}, Resources: []string{"grayreleases"}, Verbs: read},
			leases,
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"graymesh-fleet"}, Verbs: read},
		}, configMaps...),
		"graymesh-controller": append([]rbacv1.PolicyRule{
			{APIGroups: []string{"graymesh.io"}, Resources: []string{"grayreleases"}, Verbs: append(read, "patch")},
			{APIGroups: []string{"graymesh.io"}, Resources: []string{"grayreleases/status"}, Verbs: []string{"patch"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"graymesh-fleet"}, Verbs: append(read, "update")},
		}, configMaps...),
	}
	granted := map[string][]rbacv1.PolicyRule{}
	for _, o := range byKind["Role"] {
		var r rbacv1.Role
		must(t, json.Unmarshal(o.JSON, &r))
		if len(r.Rules) > 0 {
			granted[r.Name] = r.Rules
		}
	}
	if got := mustJSON(t, granted); string(got) != string(mustJSON(t, want)) {
		t.Errorf("granted %s\nwant    %s", got, mustJSON(t, want))
	}
	subjects := map[string]string{}
	for _, o := range byKind["RoleBinding"] {
		var b rbacv1.RoleBinding
		must(t, json.Unmarshal(o.JSON, &b))
		for _, s := range b.Subjects {
			subjects[b.RoleRef.Name] = s.Name
		}
	}
	if subjects["graymesh-node"] != "graymesh" || subjects["graymesh-controller"] != "graymesh-controller" {
		t.Errorf("role bindings %v: want graymesh-node to the DaemonSet's graymesh, graymesh-controller to graymesh-controller", subjects)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

// checkSelectors: each workload's selector picks only its own pods, and
// the node-local Service only the DaemonSet's. Overlapping selectors make
// a DaemonSet and a Deployment count each other's pods in rollouts, and
// would put a controller pod behind the Service Envoy calls if it ever
// named a port as the nodes do.
func checkSelectors(t *testing.T, byKind map[string][]Object) {
	t.Helper()
	type workload struct {
		name     string
		selector map[string]string
		pod      map[string]string
	}
	var all []workload
	for _, o := range byKind["DaemonSet"] {
		var ds appsv1.DaemonSet
		must(t, json.Unmarshal(o.JSON, &ds))
		all = append(all, workload{"DaemonSet " + ds.Name, ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels})
	}
	for _, o := range byKind["Deployment"] {
		var d appsv1.Deployment
		must(t, json.Unmarshal(o.JSON, &d))
		all = append(all, workload{"Deployment " + d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels})
	}
	for _, w := range all {
		for _, other := range all {
			if selects(w.selector, other.pod) != (w.name == other.name) {
				t.Errorf("%s's selector %v: selects %s's pods (%v) = %v", w.name, w.selector, other.name, other.pod, selects(w.selector, other.pod))
			}
		}
	}
	for _, o := range byKind["Service"] {
		var svc corev1.Service
		must(t, json.Unmarshal(o.JSON, &svc))
		if svc.Name != "graymesh" {
			continue // an overlay's own Services (the edge gateway's)
		}
		for _, w := range all {
			if want := strings.HasPrefix(w.name, "DaemonSet "); selects(svc.Spec.Selector, w.pod) != want {
				t.Errorf("Service %s's selector %v selects %s's pods: %v, want %v", svc.Name, svc.Spec.Selector, w.name, !want, want)
			}
		}
	}
}

// selects reports whether a matchLabels selector picks a pod with labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}
