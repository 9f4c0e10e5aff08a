package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubeDeletionFacts pins down what the API server does on a DELETE of
// a GrayRelease that carries a finalizer, the facts the fleet version's
// tombstones rest on (Kubernetes API docs, "Finalizers" and "Object
// Meta": generation): a metadata-only patch (adding a finalizer) does not
// raise the generation; a patch carrying a stale resourceVersion is a
// conflict; a DELETE leaves the object with deletionTimestamp set and its
// generation raised by one (a second DELETE does not raise it again); a
// spec patch of the deleting object raises it again; the object is gone
// once the finalizer is removed. Then the kubernetes-mode RBAC, as
// graymesh's ServiceAccount.
func TestKubeDeletionFacts(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	k.mustKubectl(grayRelease("facts", "  env: gray\n  percent: 10\n"), "apply", "-f", "-")
	obj, err := k.release("facts")
	must(t, err)
	g0 := generation(obj)
	// A merge patch carrying a resourceVersion other than the object's is
	// refused with a conflict: the writer's finalizer patches rely on it.
	_, err = k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"metadata":{"resourceVersion":"1","finalizers":["graymesh.io/fleet-version"]}}`))
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("patch with a stale resourceVersion: %v, want 409 Conflict", err)
	}
	_, err = k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"metadata":{"finalizers":["graymesh.io/fleet-version"]}}`))
	must(t, err)
	obj, err = k.release("facts")
	must(t, err)
	if g := generation(obj); g != g0 {
		t.Fatalf("adding a finalizer moved the generation %d → %d", g0, g)
	}
	_, err = k.do(http.MethodDelete, releasePath("facts"), "", nil)
	must(t, err)
	obj, err = k.release("facts")
	must(t, err)
	meta, _ := obj["metadata"].(map[string]any)
	if meta["deletionTimestamp"] == nil {
		t.Fatalf("deleted object with a finalizer has no deletionTimestamp: %v", meta)
	}
	if g := generation(obj); g != g0+1 {
		t.Fatalf("generation after DELETE with a finalizer: %d, want %d", g, g0+1)
	}
	t.Logf("DELETE with a finalizer: deletionTimestamp %v, generation %d → %d", meta["deletionTimestamp"], g0, generation(obj))
	// A second DELETE while the finalizer holds leaves the generation.
	_, err = k.do(http.MethodDelete, releasePath("facts"), "", nil)
	must(t, err)
	obj, err = k.release("facts")
	must(t, err)
	if g := generation(obj); g != g0+1 {
		t.Fatalf("generation after a second DELETE: %d, want %d", g, g0+1)
	}
	// A deleting object still takes spec changes, each raising its
	// generation: the writer records the generation it removes the
	// finalizer at, not the one the deletion started with.
	_, err = k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"spec":{"percent":20}}`))
	must(t, err)
	obj, err = k.release("facts")
	must(t, err)
	if g := generation(obj); g != g0+2 {
		t.Fatalf("generation after a spec patch of a deleting object: %d, want %d", g, g0+2)
	}
	_, err = k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	must(t, err)
	waitFor(t, "object gone once its finalizer is removed", 10*time.Second, func() error {
		if _, err := k.release("facts"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	k.checkModeRBAC(t)
}

// checkModeRBAC installs the kubernetes-mode Roles and RoleBindings and,
// impersonating each role's ServiceAccount, checks that the one ConfigMap
// can be listed and watched by name (a metadata.name field selector is
// what lets resourceNames authorise a list or a watch) and no other
// watched; that the namespace's ConfigMaps can be read and listed (the
// fleet analysis's evidence and state ConfigMaps, whose names RBAC cannot
// foresee) but not deleted, and Secrets not read; that only the controller
// may patch a GrayRelease (its finalizers, its spec), never a node pod,
// and the controller may update the fleet ConfigMap. (A node can update it
// too, through the rule for its evidence ConfigMaps: RBAC has no name
// prefixes; docs/kubernetes.md says so.)
func (k *kubeCP) checkModeRBAC(t *testing.T) {
	t.Helper()
	k.mustKubectl("", "apply", "-n", "graymesh", "-f", filepath.Join(repoRoot, "manifests", "components", "kubernetes-mode", "rbac.yaml"))
	node := []string{"--as", "system:serviceaccount:graymesh:graymesh", "-n", "graymesh"}
	controller := []string{"--as", "system:serviceaccount:graymesh:graymesh-controller", "-n", "graymesh"}
	byName := "/api/v1/namespaces/graymesh/configmaps?fieldSelector=metadata.name%3Dgraymesh-fleet"
	k.mustKubectl("", "create", "configmap", "other", "-n", "graymesh")
	k.mustKubectl(grayRelease("rbac", "  env: gray\n  percent: 10\n"), "apply", "-f", "-")
	finalizer := []string{"patch", "grayrelease", "rbac", "--type", "merge", "-p", `{"metadata":{"finalizers":["graymesh.io/fleet-version"]}}`}
	spec := []string{"patch", "grayrelease", "rbac", "--type", "merge", "-p", `{"spec":{"state":"frozen"}}`, "--dry-run=server"}
	for _, tt := range []struct {
		what  string
		as    []string
		args  []string
		allow bool
	}{
		{"node: create the fleet ConfigMap (create cannot name an object)", node, []string{"create", "configmap", "graymesh-fleet"}, true},
		{"node: list it by name", node, []string{"get", "--raw", byName}, true},
		{"node: watch it by name", node, []string{"get", "--raw", byName + "&watch=true&timeoutSeconds=1"}, true},
		{"node: list every ConfigMap (the nodes' analysis evidence)", node, []string{"get", "--raw", "/api/v1/namespaces/graymesh/configmaps"}, true},
		{"node: read another ConfigMap", node, []string{"get", "configmap", "other"}, true},
		{"node: watch every ConfigMap", node, []string{"get", "--raw", "/api/v1/namespaces/graymesh/configmaps?watch=true&timeoutSeconds=1"}, false},
		{"node: delete a ConfigMap", node, []string{"delete", "configmap", "other", "--dry-run=server"}, false},
		{"node: read a Secret", node, []string{"get", "secrets"}, false},
		{"node: patch a GrayRelease's spec", node, spec, false},
		{"node: patch a GrayRelease's finalizers", node, finalizer, false},
		{"controller: watch the fleet ConfigMap by name", controller, []string{"get", "--raw", byName + "&watch=true&timeoutSeconds=1"}, true},
		{"controller: read a Secret", controller, []string{"get", "secrets"}, false},
		{"controller: patch a GrayRelease's spec", controller, spec, true},
		{"controller: patch a GrayRelease's finalizers", controller, finalizer, true},
	} {
		out, err := k.kubectl("", append(tt.args, tt.as...)...)
		if allowed := err == nil; allowed != tt.allow {
			t.Errorf("%s: allowed %v, want %v:\n%s", tt.what, allowed, tt.allow, out)
		}
	}
	cm := k.mustKubectl("", "get", "configmap", "graymesh-fleet", "-o", "json")
	if out, err := k.kubectl(cm, append([]string{"replace", "-f", "-"}, controller...)...); err != nil {
		t.Errorf("controller: update the fleet ConfigMap: %v\n%s", err, out)
	}
	k.mustKubectl("", "patch", "grayrelease", "rbac", "--type", "merge", "-p", `{"metadata":{"finalizers":null}}`)
}
