package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestKubeDeletionFacts pins down what the API server does on a DELETE of
// a GrayRelease that carries a finalizer, the facts the fleet version's
// tombstones rest on (Kubernetes API docs, "Finalizers" and "Object
// Meta": generation): the object stays with deletionTimestamp set and its
// generation raised by one; a metadata-only patch (adding a finalizer)
// does not raise the generation; the object is gone once the finalizer
// is removed.
func TestKubeDeletionFacts(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	k.mustKubectl(grayRelease("facts", "  env: gray\n  percent: 10\n"), "apply", "-f", "-")
	obj, err := k.release("facts")
	must(t, err)
	g0 := generation(obj)
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
	// A second DELETE while the finalizer holds: does the generation move again?
	_, err = k.do(http.MethodDelete, releasePath("facts"), "", nil)
	must(t, err)
	obj, err = k.release("facts")
	must(t, err)
	t.Logf("second DELETE: generation %d", generation(obj))
	// A spec patch of a deleting object.
	_, perr := k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"spec":{"percent":20}}`))
	obj, err = k.release("facts")
	must(t, err)
	t.Logf("spec patch while deleting: err=%v generation %d", perr, generation(obj))
	_, err = k.do(http.MethodPatch, releasePath("facts"), "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	must(t, err)
	waitFor(t, "object gone once its finalizer is removed", 10*time.Second, func() error {
		if _, err := k.release("facts"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}
