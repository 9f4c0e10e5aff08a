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
