package e2e

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/lane"
)

// agrees compares one hop's graymesh headers with an explanation.
func agrees(t *testing.T, what string, hop chainReply, ex map[string]any) {
	t.Helper()
	for header, field := range map[string]string{
		"x-gray-env": "env", "x-gray-reason": "reason", "x-gray-release": "release",
		"x-gray-version": "version", "x-gray-fallback": "fallback",
	} {
		got, _ := ex[field].(string)
		if header == "x-gray-version" && hop.Service != "frontend" {
			// An inner hop's Envoy is not handed the lane's version as a
			// header (it stays in the lane); explain still says which
			// version the lane was decided with.
			if _, set := hop.Gray[header]; set {
				t.Errorf("%s: %s's hop was handed %s", what, hop.Service, header)
			}
			continue
		}
		if want := hop.Gray[header]; got != want {
			t.Errorf("%s: %s is %q at %s's hop, explain says %s %q (%v)", what, header, want, hop.Service, field, got, ex)
		}
	}
}

// TestExplainAgreesWithEnvoy asks `graymesh explain --admin` about callers
// whose decisions go beyond the rules — a member of a frozen release, a
// subject the freeze keeps out, a hop whose service falls back — and
// checks that what it says is exactly what Envoy's hops were told.
func TestExplainAgreesWithEnvoy(t *testing.T) {
	m := newFourHop(t)
	if cfg, err := os.ReadFile(m.configPath); err != nil || !regexp.MustCompile(`(?m)^membership:\s+enabled: true`).Match(cfg) {
		t.Fatalf("the mesh example must enable membership for this test (%v)", err)
	}
	token := func(s string) string { return m.token(s, time.Now().Add(time.Hour)) }
	explain := func(args ...string) map[string]any {
		t.Helper()
		ex, err := m.explainInForce(args...)
		must(t, err)
		return ex
	}

	// Before any freeze: alice is whitelisted; inventory has no gray version and falls back,
	// keeping the lane the edge signed.
	r, err := m.chain(newTraceID(), bearer(token("alice")))
	must(t, err)
	inventory := r.Calls[0].Calls[0]
	if inventory.Service != "inventory" || inventory.Gray["x-gray-fallback"] != "no-gray-version" {
		t.Fatalf("inventory hop %s: %v", inventory.Service, inventory.Gray)
	}
	signer, err := lane.NewSigner([]byte(m.laneKey), 5*time.Minute)
	must(t, err)
	// inventory's Envoy verified the lane itself; explain verifies the
	// same lane in graymesh and must say what inventory's routes said.
	laneToken := signer.Sign("gray", "shop-v2", r.Gray["x-gray-version"], time.Now())
	agrees(t, "inner hop that falls back", inventory, explain("--inner", "--service", "inventory", "--lane", laneToken))
	agrees(t, "edge decision for alice", r, explain("--token", token("alice"), "--service", "frontend"))

	// A subject the percentage admits becomes a member.
	var member, cookie string
	for i := 0; i < 200 && cookie == ""; i++ {
		s := fmt.Sprintf("explain-%d", i)
		req, _ := http.NewRequest(http.MethodGet, m.edge+"/", nil)
		req.Header.Set("Authorization", "Bearer "+token(s))
		resp, err := m.client.Do(req)
		must(t, err)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "gm_member" {
				member, cookie = s, c.Value
			}
		}
	}
	if cookie == "" {
		t.Fatal("no subject of 200 was admitted with a membership cookie")
	}
	// A subject the percentage would admit, never seen before the freeze.
	var fresh string
	for i := 0; i < 1000 && fresh == ""; i++ {
		s := fmt.Sprintf("fresh-%d", i)
		if ex := explain("--subject", s, "--service", "frontend"); ex["reason"] == "percent" {
			fresh = s
		}
	}
	if fresh == "" {
		t.Fatal("no fresh subject in range")
	}
	m.adminPost(t, "/v1/releases/shop-v2/freeze")

	r, err = m.chain(newTraceID(), map[string]string{"Authorization": "Bearer " + token(member), "Cookie": "gm_member=" + cookie})
	must(t, err)
	if r.Gray["x-gray-reason"] != "member" {
		t.Fatalf("member %s after the freeze: %v", member, r.Gray)
	}
	agrees(t, "member of a frozen release", r, explain("--token", token(member), "--membership", cookie, "--service", "frontend"))

	r, err = m.chain(newTraceID(), bearer(token(fresh)))
	must(t, err)
	if r.Gray["x-gray-reason"] != "frozen" {
		t.Fatalf("fresh subject %s after the freeze: %v", fresh, r.Gray)
	}
	agrees(t, "subject kept out by the freeze", r, explain("--token", token(fresh), "--service", "frontend"))

}
