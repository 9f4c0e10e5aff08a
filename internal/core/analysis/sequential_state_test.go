package analysis

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestRestoredSequentialContinuesTheSameRollout: a rollout's test written
// out mid-rollout (through JSON, as a fleet analyser persists it) and
// restored judges the windows that follow exactly as the test that was
// never interrupted: the same reports, statistics and verdicts, window by
// window. A test started afresh at the same point does not (it is a new
// rollout), which shows the state carries what matters.
func TestRestoredSequentialContinuesTheSameRollout(t *testing.T) {
	s := defaults(t)
	// Every kind of state: errors on the service and a route, latency
	// quantiles, a regression that builds up slowly.
	w := newSimWorld(simScenario{nodes: 1, rate: 100, grayShare: 0.1, routeShare: 0.05, routeGrayEr: 0.1, tailShare: 0.01, tailAddMS: 100}, s)
	r := newSimRand(11)
	var windows []*Evidence
	for range 12 {
		e, _ := w.window(r, false)
		windows = append(windows, e)
	}
	orig := NewSequential(s, []string{"shop"})
	for _, e := range windows[:5] {
		orig.Update(e)
	}
	b, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreSequential(s, b)
	if err != nil {
		t.Fatal(err)
	}
	fresh := NewSequential(s, []string{"shop"})
	differs := false
	for i, e := range windows[5:] {
		want, got := orig.Update(e), restored.Update(e)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("window %d after the restore: %+v, want %+v", i+6, got, want)
		}
		if f := fresh.Update(e); !reflect.DeepEqual(want, f) {
			differs = true
		}
	}
	if !differs {
		t.Fatal("a fresh test reported what the continued one did: the state carried nothing")
	}
}

// TestRestoreSequentialRefusesBrokenState: state that cannot be the
// test's is an error, never a fresh test in disguise.
func TestRestoreSequentialRefusesBrokenState(t *testing.T) {
	for _, b := range []string{`{`, `{"services":["shop"],"state":{}}`,
		`{"services":["shop"],"state":{"shop":{"errors":{"log_ratio":[1]}}}}`} {
		if _, err := RestoreSequential(defaults(t), []byte(b)); err == nil {
			t.Errorf("%s restored", b)
		}
	}
}
