package kube

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"

	"github.com/graymesh/graymesh/internal/runtime/control"
)

// recorder is an Applier that accepts everything and fails the test when
// the version it is given goes down.
type recorder struct {
	t        *testing.T
	versions []int64
}

func (r *recorder) Submit(c control.Change) (control.Result, error) {
	ch, ok := c.(control.ReleaseChange)
	if !ok {
		r.t.Fatalf("the source submitted a %T", c)
	}
	v, err := strconv.ParseInt(ch.Version, 10, 64)
	if err != nil {
		r.t.Fatalf("version %q", ch.Version)
	}
	if n := len(r.versions); n > 0 && v < r.versions[n-1] {
		r.t.Errorf("version went down: %d after %d (change of %q)", v, r.versions[n-1], ch.Name)
	}
	r.versions = append(r.versions, v)
	return control.Result{}, nil
}

// testSource is a Source whose caches the test fills by hand (the
// informers do not run).
func testSource(t *testing.T) (*Source, *recorder) {
	t.Helper()
	fc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{GVR: "GrayReleaseList", configMaps: "ConfigMapList"})
	s := NewSource(&Client{Dynamic: fc, Namespace: "graymesh", Config: &rest.Config{Host: "127.0.0.1:1"}}, slog.New(slog.DiscardHandler))
	return s, &recorder{t: t}
}

func grayObj(name, uid string, gen int64, deleting bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "graymesh.io/v1alpha1", "kind": "GrayRelease",
		"spec": map[string]any{"env": "gray", "percent": int64(0)},
	}}
	u.SetName(name)
	u.SetNamespace("graymesh")
	u.SetUID(types.UID(uid))
	u.SetGeneration(gen)
	if deleting {
		ts := metav1.NewTime(time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC))
		u.SetDeletionTimestamp(&ts)
	}
	return u
}

func recordObj(t *testing.T, rec fleetRecord) *unstructured.Unstructured {
	t.Helper()
	data := map[string]string{}
	if rec.Tombstones != nil || rec.Base != 0 {
		b := mustMarshal(t, rec)
		data[fleetKey] = string(b)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}
	u.SetName(FleetConfigMap)
	_ = unstructured.SetNestedStringMap(u.Object, data, "data")
	return u
}

func (s *Source) served0(t *testing.T) int64 {
	t.Helper()
	v, _ := strconv.ParseInt(s.versionWith("", objGen{}), 10, 64)
	return v
}

// TestSourceDeletedInForce: an object created and deleted at once vanishes
// while its release is in force, never seen deleting; its generation stays
// in the fleet version.
func TestSourceDeletedInForce(t *testing.T) {
	s, r := testSource(t)
	must(t, s.inf.GetStore().Add(grayObj("a", "uid-a", 2, false)))
	must(t, s.inf.GetStore().Add(grayObj("q", "uid-q", 1, false)))
	s.Sync(r)
	if v := s.served0(t); v != 3 {
		t.Fatalf("before the deletion: %d, want 3", v)
	}
	q := grayObj("q", "uid-q", 1, false)
	must(t, s.inf.GetStore().Delete(q))
	s.deleted(q)
	s.pass(r)
	if v := s.served0(t); v != 3 {
		t.Fatalf("after the DELETE: %d, want 3", v)
	}
}

// TestSourceDeletion walks release b (generation 4, beside a at 2: version
// 6) through its deletion as a node sees it in each order of its two
// watches, as a node started afterwards sees it, and as a node that
// missed the DELETE and sees a new object of the same name sees it.
func TestSourceDeletion(t *testing.T) {
	at := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	rec := fleetRecord{Tombstones: map[types.UID]tombstone{"uid-b": {Generation: 5, At: at}}}
	start := func(t *testing.T) (*Source, *recorder) {
		s, r := testSource(t)
		must(t, s.inf.GetStore().Add(grayObj("a", "uid-a", 2, false)))
		must(t, s.inf.GetStore().Add(grayObj("b", "uid-b", 4, false)))
		s.Sync(r)
		if v := s.served0(t); v != 6 {
			t.Fatalf("before the deletion: %d, want 6", v)
		}
		// kubectl delete: deletionTimestamp, generation 5.
		must(t, s.inf.GetStore().Update(grayObj("b", "uid-b", 5, true)))
		s.pass(r)
		if _, inForce := s.accepted["b"]; inForce || s.served != "7" {
			t.Fatalf("deleting: b in force %v, served %s, want out at 7", inForce, s.served)
		}
		return s, r
	}
	gone := func(s *Source) {
		b := grayObj("b", "uid-b", 5, true)
		must(t, s.inf.GetStore().Delete(b))
		s.deleted(b)
	}
	check := func(t *testing.T, s *Source, r *recorder, what string) {
		t.Helper()
		s.pass(r)
		if v := s.served0(t); v != 7 || s.served != "7" {
			t.Fatalf("%s: version %d, served %s, want 7", what, v, s.served)
		}
	}
	t.Run("DELETE before the record", func(t *testing.T) {
		s, r := start(t)
		gone(s)
		check(t, s, r, "after the DELETE")
		s.setRecord(recordObj(t, rec))
		check(t, s, r, "after the record")
		if len(s.gone) != 0 {
			t.Errorf("gone still holds %v once the record lists it", s.gone)
		}
		s.setRecord(recordObj(t, fleetRecord{Base: 5, Compacted: map[types.UID]time.Time{"uid-b": at}}))
		check(t, s, r, "after folding")
	})
	t.Run("record before the DELETE", func(t *testing.T) {
		s, r := start(t)
		s.setRecord(recordObj(t, rec))
		check(t, s, r, "record while b is still listed")
		gone(s)
		check(t, s, r, "after the DELETE")
	})
	t.Run("started afterwards", func(t *testing.T) {
		s, r := testSource(t)
		must(t, s.inf.GetStore().Add(grayObj("a", "uid-a", 2, false)))
		s.setRecord(recordObj(t, rec))
		s.Sync(r)
		if s.served != "7" {
			t.Fatalf("restarted: served %s, want 7", s.served)
		}
	})
	t.Run("DELETE missed, same name again", func(t *testing.T) {
		s, r := testSource(t)
		must(t, s.inf.GetStore().Add(grayObj("a", "uid-a", 2, false)))
		must(t, s.inf.GetStore().Add(grayObj("b", "uid-b", 4, false)))
		s.Sync(r)
		must(t, s.inf.GetStore().Update(grayObj("b", "uid-b2", 1, false)))
		s.pass(r)
		if s.served != "7" || s.accepted["b"].uid != "uid-b2" {
			t.Fatalf("served %s, b %+v: want 7 (2 + 1 + the old b's 4)", s.served, s.accepted["b"])
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}
