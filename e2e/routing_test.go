package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const listReleases = `
releases:
  - name: shop-v2
    env: gray
    whitelist: [alice, mallory]
    blacklist: [mallory]
`

func TestWhitelistedSubjectServedByGray(t *testing.T) {
	m := newMesh(t, listReleases)
	r := m.mustGet(bearer(m.token("alice", time.Now().Add(time.Hour))))
	if r.Env != "gray" || r.Version != "v2" {
		t.Fatalf("alice served by %s/%s, want gray/v2", r.Env, r.Version)
	}
	if r.Gray["x-gray-env"] != "gray" || r.Gray["x-gray-reason"] != "whitelist" || r.Gray["x-gray-release"] != "shop-v2" {
		t.Fatalf("upstream saw graymesh headers %v", r.Gray)
	}
	if r.Gray["x-gray-version"] == "" {
		t.Fatal("no config version header")
	}
	// The response tells the client which config version decided.
	req, _ := http.NewRequest(http.MethodGet, m.listener+"/", nil)
	resp, err := m.client.Do(req)
	must(t, err)
	resp.Body.Close()
	if v := resp.Header.Get("x-gray-version"); v == "" || v != r.Gray["x-gray-version"] {
		t.Fatalf("response x-gray-version %q, request saw %q", v, r.Gray["x-gray-version"])
	}
	// The same token as a cookie is not configured here: only the header counts.
	r = m.mustGet(nil)
	if r.Env != "stable" {
		t.Fatalf("anonymous served by %s", r.Env)
	}
}

func TestBlacklistBeatsWhitelist(t *testing.T) {
	m := newMesh(t, listReleases)
	r := m.mustGet(bearer(m.token("mallory", time.Now().Add(time.Hour))))
	if r.Env != "stable" || r.Gray["x-gray-reason"] != "blacklisted" {
		t.Fatalf("mallory served by %s with %v, want stable/blacklisted", r.Env, r.Gray)
	}
}

func TestBadTokensAreStable(t *testing.T) {
	m := newMesh(t, listReleases)
	exp := time.Now().Add(time.Hour)
	claims := jwt.MapClaims{"sub": "alice", "iss": "e2e", "aud": "e2e", "exp": exp.Unix()}
	sign := func(method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tokens := map[string]string{
		"forged (wrong key)":               sign(jwt.SigningMethodHS256, "hs", []byte("attacker-secret-0123456789abcdef-xyz"), claims),
		"alg none":                         sign(jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType, claims),
		"HS256 with the RS256 key":         sign(jwt.SigningMethodHS256, "rs", m.rsaPEM, claims),
		"HS256 with the RS256 key, no kid": sign(jwt.SigningMethodHS256, "", m.rsaPEM, claims),
		"expired":                          m.token("alice", time.Now().Add(-time.Hour)),
		"truncated":                        m.token("alice", exp)[:60],
		"for another audience":             sign(jwt.SigningMethodHS256, "hs", m.secret, jwt.MapClaims{"sub": "alice", "iss": "e2e", "aud": "other-app", "exp": exp.Unix()}),
	}
	// Control: the real RS256 key admits alice, so the failures above are
	// the tokens' fault, not the key setup's.
	if r := m.mustGet(bearer(sign(jwt.SigningMethodRS256, "rs", m.rsa, claims))); r.Env != "gray" {
		t.Fatalf("valid RS256 token served by %s", r.Env)
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			h := bearer(tok)
			h["x-gray-env"] = "gray"
			r := m.mustGet(h)
			if r.Env != "stable" {
				t.Fatalf("served by %s (headers %v), want stable", r.Env, r.Gray)
			}
			if r.Gray["x-gray-reason"] != "invalid-token" {
				t.Fatalf("reason %q, want invalid-token", r.Gray["x-gray-reason"])
			}
		})
	}
}

func TestSpoofedEnvHeaderIsReplaced(t *testing.T) {
	m := newMesh(t, listReleases)
	r := m.mustGet(map[string]string{"x-gray-env": "gray", "x-gray-release": "evil", "x-gray-reason": "whitelist"})
	if r.Env != "stable" {
		t.Fatalf("spoofed request served by %s", r.Env)
	}
	want := map[string]string{"x-gray-env": "stable", "x-gray-reason": "no-identity"}
	for k, v := range want {
		if r.Gray[k] != v {
			t.Fatalf("upstream saw %s=%q, want %q (all: %v)", k, r.Gray[k], v, r.Gray)
		}
	}
	if _, ok := r.Gray["x-gray-release"]; ok {
		t.Fatalf("client's x-gray-release reached the upstream: %v", r.Gray)
	}
}

func TestPercentRolloutMatchesExplain(t *testing.T) {
	m := newMesh(t, `
releases:
  - name: shop-v2
    env: gray
    salt: e2e-ramp
    percent: 30
`)
	const n = 1000
	served := m.serveMany(t, n, 30, 4, func(i int) map[string]string {
		return bearer(m.token(fmt.Sprintf("user-%d", i), time.Now().Add(time.Hour)))
	})
	err := parallel(n, 4, func(i int) error {
		ex, err := m.explain("--subject", fmt.Sprintf("user-%d", i))
		if err != nil {
			return err
		}
		if ex["served"] != served[i] {
			return fmt.Errorf("user-%d: served by %s, explain says %v (%v)", i, served[i], ex["served"], ex)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrafficWeightedRelease(t *testing.T) {
	m := newMesh(t, `
releases:
  - name: shop-v2-traffic
    env: gray
    traffic_percent: 20
`)
	m.serveMany(t, 1000, 20, 5, func(int) map[string]string { return nil })
	// graymesh itself made the split (it draws on x-request-id), so the
	// edge can sign it into a lane; Envoy's weighted route default only
	// serves when graymesh does not answer.
	if r := m.mustGet(nil); r.Gray["x-gray-reason"] != "traffic" || r.Gray["x-gray-release"] != "shop-v2-traffic" {
		t.Fatalf("anonymous request decided by %v, want the traffic split", r.Gray)
	}
}

// serveMany sends n requests (headers from headersFor), checks that every
// upstream saw an x-gray-env naming the environment that served it, and
// that the share served by gray is wantPercent ± tolerance. It returns the
// environment that served each request.
func (m *mesh) serveMany(t *testing.T, n int, wantPercent, tolerance float64, headersFor func(i int) map[string]string) []string {
	t.Helper()
	served := make([]string, n)
	var gray atomic.Int64
	err := parallel(n, 8, func(i int) error {
		r, err := m.get(headersFor(i))
		if err != nil {
			return err
		}
		served[i] = r.Env
		if r.Gray["x-gray-env"] != r.Env {
			return fmt.Errorf("request %d served by %s but upstream saw x-gray-env=%q", i, r.Env, r.Gray["x-gray-env"])
		}
		if r.Env == "gray" {
			gray.Add(1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	share := float64(gray.Load()) / float64(n) * 100
	t.Logf("%d of %d requests (%.1f%%) served by gray, want %v ± %v%%", gray.Load(), n, share, wantPercent, tolerance)
	if math.Abs(share-wantPercent) > tolerance {
		t.Fatalf("%.1f%% served by gray, want %v ± %v", share, wantPercent, tolerance)
	}
	return served
}

func TestExtProcDownFailsOpenToStable(t *testing.T) {
	m := newMesh(t, listReleases)
	alice := bearer(m.token("alice", time.Now().Add(time.Hour)))
	if r := m.mustGet(alice); r.Env != "gray" {
		t.Fatalf("before: alice served by %s", r.Env)
	}
	m.graymesh.kill()
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		h := bearer(m.token("alice", time.Now().Add(time.Hour)))
		h["x-gray-env"] = "gray"
		r, err := m.get(h)
		if err != nil {
			t.Fatalf("request %d with graymesh down: %v", i, err)
		}
		if r.Env != "stable" {
			t.Fatalf("request %d with graymesh down served by %s; a spoofed header must not route", i, r.Env)
		}
		if strings.Contains(fmt.Sprint(r.Gray), "whitelist") {
			t.Fatalf("stale decision headers %v", r.Gray)
		}
	}
	t.Logf("%d requests, all 200 from stable with graymesh down, in %s", n, time.Since(start).Round(time.Millisecond))
}
