package control

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// goNamesFile is the config file testdata/state-go-names.json was written
// for, by a graymesh that kept durations as {"Duration": ns} objects and
// the analysis under Go's field names.
const goNamesFile = `
lane: {key: "control-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
mesh: {message_timeout: 80ms}
releases:
  - name: shop-v2
    env: gray
    percent: 10
    analysis:
      interval: 45s
      min_requests: 50
      metrics: [errors, latency]
      latency: {tolerance: 15, min_effect: 7ms, critical: 300ms}
      errors: {tolerance: 2, critical: 25}
      on_fail: freeze
      on_critical: kill
services:
  - name: shop
    environments:
      stable: [127.0.0.1:9101]
      gray: [127.0.0.1:9102]
`

// TestStateInOlderJSONFormLoads: a state file written before durations
// were strings and the analysis had snake case names still gives the
// config in force with every setting, and the same content hash as the
// same file read now, so a restart after an upgrade makes no new version.
func TestStateInOlderJSONFormLoads(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile(filepath.Join("testdata", "state-go-names.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.InForce == nil || len(st.InForce.Releases) != 1 || st.InForce.Releases[0].Analysis == nil {
		t.Fatalf("config in force not read: %+v", st.InForce)
	}
	a := st.InForce.Releases[0].Analysis
	if a.Interval.Duration != 45*time.Second || a.MinRequests != 50 || a.OnFail != "freeze" || a.OnCritical != "kill" ||
		a.Latency.MinEffect.Duration != 7*time.Millisecond || a.Latency.Critical.Duration != 300*time.Millisecond ||
		*a.Errors.Tolerance != 2 || *a.Latency.Tolerance != 15 {
		t.Errorf("analysis read back as %+v", a)
	}
	if d := st.InForce.Mesh.MessageTimeout.Duration; d != 80*time.Millisecond {
		t.Errorf("message_timeout read back as %s", d)
	}
	file, err := config.Parse([]byte(goNamesFile), "graymesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.ContentHash, contentHash(file); got != want {
		t.Errorf("content hash %s, the same file read now hashes %s: a restart would make a new version", got, want)
	}
	if st.Version != 7 {
		t.Errorf("version %d, want 7", st.Version)
	}
}
