package kube

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/analysis"
)

func evidenceAt(env string, to time.Time) *analysis.Evidence {
	e := analysis.NewEvidence(analysis.Query{Release: "shop-v2", Env: env, Services: []string{"shop"}, From: to.Add(-time.Second), To: to})
	e.Add(analysis.Sample{Service: "shop", Env: env, Duration: time.Millisecond})
	return e
}

func indexes(t *testing.T, entry string) []int64 {
	t.Helper()
	var ws []windowEvidence
	if err := json.Unmarshal([]byte(entry), &ws); err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, w := range ws {
		out = append(out, w.Index)
	}
	return out
}

// TestNodeEvidenceEntryKeepsTheRetainedWindows: a node's entry for a
// release keeps its windows for evidenceRetention (a successor analyser
// judges the ones its predecessor left), at least minEvidenceWindows,
// replaces a window published again, and drops an earlier env's windows.
func TestNodeEvidenceEntryKeepsTheRetainedWindows(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 10, 0, 0, time.UTC)
	entry := ""
	var err error
	for k := int64(0); k < 100; k++ {
		to := now.Add(time.Duration(k-99) * time.Second)
		if entry, err = withWindow(entry, k, evidenceAt("gray", to), to); err != nil {
			t.Fatal(err)
		}
	}
	got := indexes(t, entry)
	if len(got) != int(evidenceRetention/time.Second)+1 || got[len(got)-1] != 99 {
		t.Fatalf("kept windows %v, want the last %s of them", got, evidenceRetention)
	}
	if entry, err = withWindow(entry, 99, evidenceAt("gray", now), now); err != nil || len(indexes(t, entry)) != len(got) {
		t.Fatalf("window 99 published again: %v %v", indexes(t, entry), err)
	}
	// Long-idle release: the last windows are kept however old.
	if entry, err = withWindow(entry, 500, evidenceAt("gray", now), now.Add(time.Hour)); err != nil || len(indexes(t, entry)) != minEvidenceWindows {
		t.Fatalf("after an hour: %v %v", indexes(t, entry), err)
	}
	if entry, err = withWindow(entry, 501, evidenceAt("blue", now), now); err != nil || len(indexes(t, entry)) != 1 {
		t.Fatalf("a new env kept the old env's windows: %v %v", indexes(t, entry), err)
	}
}
