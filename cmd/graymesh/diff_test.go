package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/core/gate"
)

const diffOld = `
releases:
  - name: shop-v2
    env: gray
    whitelist: [alice]
    percent: 30
`

func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runDiff(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := diffCmd(args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestDiffCommand(t *testing.T) {
	old := writeConfig(t, "old.yaml", diffOld)
	tests := []struct {
		name    string
		new     string
		want    []string
		notWant []string
	}{
		{"percent lowered is refused", strings.Replace(diffOld, "percent: 30", "percent: 20", 1), []string{
			// Deterministic: the same 20,000 subjects every run; 10% ± sampling.
			"release shop-v2: stable → gray 0.00%, gray → stable 9.88%\n",
			"  - percent lowered 30 → 20 (10.00% of subjects leave gray)",
			"evictions (1):\n  release shop-v2: rule percent-lowered: percent lowered 30 → 20 (10.00% of subjects leave gray)\n",
			"this change would be refused unless NEW declares it a rollback: change: {rollback: true, reason: ...}",
		}, []string{"no subject leaves gray"}},
		{"declared rollback", strings.NewReplacer("whitelist: [alice]", "whitelist: []", "percent: 30", "percent: 10").Replace(diffOld) +
			"change: {rollback: true, reason: \"alice's cart is broken\"}\n", []string{
			`  - whitelist entry "alice" removed`,
			`  - subject "alice" moves gray → stable`,
			"evictions (2):",
			`release shop-v2: rule whitelist-removed: whitelist entry "alice" removed`,
			"release shop-v2: rule percent-lowered: percent lowered 30 → 10 (20.00% of subjects leave gray)",
			`declared a rollback (change.rollback: true, reason: "alice's cart is broken"): it would be accepted`,
		}, []string{"would be refused"}},
		{"ramp up is not an eviction", strings.Replace(diffOld, "percent: 30", "percent: 50", 1) +
			"  - {name: pay-v3, env: blue, percent: 5}\n", []string{
			"release shop-v2: stable → gray 19.99%, gray → stable 0.00%\n",
			"  - percent raised 30 → 50",
			"release pay-v3: stable → gray 2.56%, gray → stable 0.00%\n", // 5% of the 50% left
			"  - added",
			"no subject leaves gray",
		}, []string{"evictions", "refused"}},
		{"unchanged", diffOld, []string{
			"release shop-v2: stable → gray 0.00%, gray → stable 0.00%\n  unchanged\n",
			"no subject leaves gray",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := writeConfig(t, "new.yaml", tt.new)
			out, _, err := runDiff(old, next, "--sample", "20000", "--at", "2026-11-21T12:00:00Z")
			if err != nil {
				t.Fatalf("diff: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestDiffCommandJSON(t *testing.T) {
	old := writeConfig(t, "old.yaml", diffOld)
	next := writeConfig(t, "new.yaml", strings.Replace(diffOld, "percent: 30", "percent: 20", 1))
	out, _, err := runDiff("--json", old, next, "--sample", "20000")
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	var rep gate.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Sample != 20000 || len(rep.Releases) != 1 || !rep.Refused || len(rep.Evictions) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if r := rep.Releases[0]; r.Release != "shop-v2" || math.Abs(r.ToStable-0.10) > 0.01 || r.ToGray != 0 {
		t.Fatalf("shares: %+v", r)
	}
}

func TestDiffCommandErrors(t *testing.T) {
	old := writeConfig(t, "old.yaml", diffOld)
	bad := writeConfig(t, "bad.yaml", "releases:\n  - {name: shop-v2, env: gray, percent: 130}\n")
	if _, _, err := runDiff(old, bad); err == nil || !strings.Contains(err.Error(), "percent") {
		t.Fatalf("bad NEW: %v", err)
	}
	if _, _, err := runDiff(filepath.Join(t.TempDir(), "missing.yaml"), old); err == nil || errors.Is(err, errUsage) {
		t.Fatalf("missing OLD: %v", err)
	}
	for _, args := range [][]string{{old}, {old, old, old}, {old, old, "--sample", "0"}, {old, old, "--bogus"}} {
		if _, _, err := runDiff(args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, _, err := runDiff(old, old, "--at", "tomorrow"); err == nil || !strings.Contains(err.Error(), "--at") {
		t.Errorf("bad --at: %v", err)
	}
}

func TestDiffCommandIdentityEviction(t *testing.T) {
	const withKey = diffOld + "identity:\n  jwt:\n    keys: [{kid: k1, alg: HS256, secret: \"k1-secret-0123456789abcdef0123456\"}]\n"
	old := writeConfig(t, "old.yaml", withKey)
	next := writeConfig(t, "new.yaml", strings.Replace(withKey, "kid: k1, alg: HS256", "kid: k2, alg: HS256", 1))
	out, _, err := runDiff(old, next, "--sample", "1000")
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	for _, want := range []string{
		"  - identity.jwt.keys: key \"k1\" (HS256) removed: tokens signed with it become anonymous\n",
		"  - identity.jwt.keys: key \"k2\" (HS256) added\n",
		"evictions (1):\n  rule key-removed: identity.jwt.keys: key \"k1\" (HS256) removed: tokens signed with it become anonymous\n",
		"this change would be refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// docs/operating.md shows what graymesh diff --admin prints for the demo's ramp
// from 30% to 50%, with the demo config in force; the figures are
// deterministic, so they must match (comparing the two files prints the
// same).
func TestDiffOperatingGuideFigures(t *testing.T) {
	demo, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(demo), "percent: 30 ") {
		t.Fatal("examples/demo.yaml no longer has docs/operating.md's \"percent: 30 \"")
	}
	next := writeConfig(t, "next.yaml", strings.Replace(string(demo), "percent: 30 ", "percent: 50 ", 1))
	out, _, err := runDiff("--admin", startDaemon(t, "../../examples/demo.yaml", ""), next)
	if err != nil {
		t.Fatalf("diff --admin: %v", err)
	}
	files, _, err := runDiff("../../examples/demo.yaml", next)
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	if strings.SplitN(out, "\n", 4)[3] != strings.SplitN(files, "\n", 4)[3] {
		t.Errorf("diff --admin and the diff of the files differ:\n%s\n%s", out, files)
	}
	guide, err := os.ReadFile("../../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n")[3:] {
		if line != "" && !strings.Contains(string(guide), "# "+line+"\n") {
			t.Errorf("docs/operating.md does not show %q as graymesh diff prints it:\n%s", line, out)
		}
	}
}
