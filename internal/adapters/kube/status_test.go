package kube

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func TestStatusDueLimitsWritesPerObject(t *testing.T) {
	now := time.Now()
	if !statusDue(time.Time{}, now) {
		t.Error("an object never written is not due")
	}
	if statusDue(now.Add(-minStatusGap/2), now) {
		t.Error("an object written half a gap ago is due again")
	}
	// The tick after a write comes statusEvery after the round that wrote,
	// less that round's duration: it must find the object due.
	if !statusDue(now.Add(-statusEvery+100*time.Millisecond), now) {
		t.Error("the tick after a write does not find the object due")
	}
}

func TestForgetWrittenKeepsListedObjectsOnly(t *testing.T) {
	listed := &unstructured.Unstructured{}
	listed.SetUID("a")
	written := map[types.UID]time.Time{"a": time.Now(), "gone": time.Now()}
	forgetWritten(written, []*unstructured.Unstructured{listed})
	if _, ok := written["gone"]; ok || len(written) != 1 {
		t.Errorf("written = %v, want only a", written)
	}
}

func TestFirstStatusOfAGenerationWaitsForTheFleet(t *testing.T) {
	t0 := time.Now()
	u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"observedGeneration": int64(4)}}}
	u.SetName("checkout")
	u.SetGeneration(5)
	seen := sightingOf(sighting{gen: 4, at: t0.Add(-time.Hour)}, 5, t0)
	if seen.gen != 5 || !seen.at.Equal(t0) {
		t.Fatalf("a new generation's sighting = %+v, want generation 5 at t0", seen)
	}
	if again := sightingOf(seen, 5, t0.Add(time.Second)); !again.at.Equal(t0) {
		t.Errorf("the same generation seen again moved its sighting to %v", again.at)
	}
	behind := []nodeReport{{Accepted: map[string]int64{"checkout": 5}}, {Accepted: map[string]int64{"checkout": 4}}}
	if generationSettled(u, seen, behind, t0.Add(statusSettle/2)) {
		t.Error("a status written while one node of two still serves the last generation, before the settle")
	}
	if !generationSettled(u, seen, behind, t0.Add(statusSettle)) {
		t.Error("no status once the settle has passed, with a node behind")
	}
	decided := []nodeReport{{Accepted: map[string]int64{"checkout": 5}}, {Refused: map[string]reportedRefusal{"checkout": {Gen: 5}}}}
	if !generationSettled(u, seen, decided, t0) {
		t.Error("no status while every node has decided on the generation")
	}
	if generationSettled(u, seen, nil, t0) {
		t.Error("a status before the settle with no report at all")
	}
	_ = unstructured.SetNestedField(u.Object, int64(5), "status", "observedGeneration")
	if !generationSettled(u, seen, behind, t0) {
		t.Error("a status that shows the generation already is held by the settle")
	}
}
