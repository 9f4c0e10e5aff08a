package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/core/gate"
)

// grayRelease renders a GrayRelease manifest for kubectl apply.
func grayRelease(name, spec string) string {
	return "apiVersion: graymesh.io/v1alpha1\nkind: GrayRelease\nmetadata:\n  name: " + name + "\n  namespace: graymesh\nspec:\n" + spec
}

// TestKubeCRDRefusesEvictions: the API server itself, through the CRD's
// CEL transition rules, refuses an evicting kubectl apply with the rule's
// name, accepts a ramp, and accepts the same evicting change once it
// declares a rollback; a kill is never refused. A whitelist entry that is
// also blacklisted goes without a rollback. Every rule package gate's
// table marks CEL has its case.
func TestKubeCRDRefusesEvictions(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 10\n  whitelist: [alice, bob]\n"), "apply", "-f", "-")
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 20\n  whitelist: [alice, bob]\n"), "apply", "-f", "-")
	refused := []struct{ name, spec, rule string }{
		{"percent lowered", "  env: gray\n  percent: 5\n  whitelist: [alice, bob]\n", "rule percent-lowered"},
		{"salt changed", "  env: gray\n  percent: 20\n  salt: other\n  whitelist: [alice, bob]\n", "rule salt-changed"},
		{"whitelist entry removed", "  env: gray\n  percent: 20\n  whitelist: [alice]\n", "rule whitelist-removed"},
		{"blacklist entry added", "  env: gray\n  percent: 20\n  whitelist: [alice, bob]\n  blacklist: [carol]\n", "rule blacklist-added"},
		{"env changed", "  env: blue\n  percent: 20\n  whitelist: [alice, bob]\n", "rule env-changed"},
	}
	for _, r := range gate.Rules() {
		if r.CEL && !slices.ContainsFunc(refused, func(c struct{ name, spec, rule string }) bool { return c.rule == "rule "+string(r.ID) }) {
			t.Errorf("rule %s is marked CEL in package gate's table but no case here applies a change it refuses", r.ID)
		}
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			out, err := k.kubectl(grayRelease("checkout", tt.spec), "apply", "-f", "-")
			if err == nil {
				t.Fatalf("kubectl apply accepted an evicting change:\n%s", out)
			}
			if !strings.Contains(out, tt.rule) || !strings.Contains(out, `"checkout"`) {
				t.Errorf("refusal names neither the rule %q nor the release:\n%s", tt.rule, out)
			}
		})
	}
	// The blacklist wins over the whitelist: a whitelisted subject the old
	// spec also blacklists was never admitted through the whitelist, so
	// removing that entry evicts nobody and is accepted; removing a plain
	// whitelist entry still is not.
	k.mustKubectl(grayRelease("search", "  env: gray\n  whitelist: [alice, bob]\n  blacklist: [bob]\n"), "apply", "-f", "-")
	k.mustKubectl(grayRelease("search", "  env: gray\n  whitelist: [alice]\n  blacklist: [bob]\n"), "apply", "-f", "-")
	if out, err := k.kubectl(grayRelease("search", "  env: gray\n  blacklist: [bob]\n"), "apply", "-f", "-"); err == nil || !strings.Contains(out, "rule whitelist-removed") {
		t.Errorf("removing plain whitelist entry alice: err %v, want rule whitelist-removed:\n%s", err, out)
	}
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 5\n  whitelist: [alice]\n  change: {rollback: true, reason: e2e}\n"), "apply", "-f", "-")
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 0\n  state: killed\n  whitelist: [alice]\n"), "apply", "-f", "-")
	if st := k.mustKubectl("", "get", "grayrelease", "checkout", "-o", "jsonpath={.spec.state}"); st != "killed" {
		t.Errorf("spec.state %q after a kill, want killed", st)
	}
	// The columns show the fleet's status (no graymesh runs here; the
	// fleet test checks their values).
	out := k.mustKubectl("", "get", "grayreleases")
	for _, col := range []string{"STATE", "PERCENT", "VERSION", "NODES", "ACCEPTED", "AGE", "checkout"} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get grayreleases lacks %s:\n%s", col, out)
		}
	}
}
