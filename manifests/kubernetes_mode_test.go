package manifests

import (
	"encoding/json"
	"slices"
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
	}
	if crds := byKind["CustomResourceDefinition"]; len(crds) != 1 || crds[0].Name != "grayreleases.graymesh.io" {
		t.Errorf("CRDs: %+v", crds)
	}
	if n := len(byKind["ClusterRole"]) + len(byKind["ClusterRoleBinding"]); n > 0 {
		t.Errorf("%d cluster-wide RBAC objects", n)
	}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"graymesh.io"}, Resources: []string{"grayreleases"}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{"graymesh.io"}, Resources: []string{"grayreleases/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"graymesh-fleet"}, Verbs: []string{"get", "list", "watch", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "update"}},
	}
	var granted []rbacv1.PolicyRule
	for _, o := range byKind["Role"] {
		var r rbacv1.Role
		must(t, json.Unmarshal(o.JSON, &r))
		granted = append(granted, r.Rules...)
	}
	if got, _ := json.Marshal(granted); string(got) != string(mustJSON(t, want)) {
		t.Errorf("granted %s\nwant    %s", got, mustJSON(t, want))
	}
	var ds appsv1.DaemonSet
	must(t, json.Unmarshal(byKind["DaemonSet"][0].JSON, &ds))
	pod := ds.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("the pod mounts no token: it cannot reach the API server")
	}
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "--kube") {
		t.Errorf("args %v lack --kube", c.Args)
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

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}
