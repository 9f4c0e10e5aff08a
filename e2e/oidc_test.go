package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/testing/testutil"
	"github.com/graymesh/graymesh/internal/testing/toolcache"
)

// keycloakVersion is the distribution scripts/install-keycloak.sh installs.
const keycloakVersion = "26.4.0"

// keycloakStartTimeout is generous: on 2 shared cores Keycloak takes 20 s
// to 90 s to start.
const keycloakStartTimeout = 180 * time.Second

// findKeycloak returns the Keycloak install and the Java home to run it
// with, or an error saying how to get them.
func findKeycloak() (home, javaHome string, err error) {
	home = os.Getenv("KEYCLOAK_HOME")
	if home == "" {
		cache, err := toolcache.Dir()
		if err != nil {
			return "", "", err
		}
		home = filepath.Join(cache, "keycloak-"+keycloakVersion)
	}
	if _, err := os.Stat(filepath.Join(home, "bin", "kc.sh")); err != nil {
		return "", "", fmt.Errorf("no Keycloak at %s", home)
	}
	javaHome = os.Getenv("KEYCLOAK_JAVA_HOME")
	if javaHome == "" {
		javaHome = "/usr/lib/jvm/temurin-25-jdk-amd64"
	}
	if _, err := os.Stat(filepath.Join(javaHome, "bin", "java")); err != nil {
		return "", "", fmt.Errorf("no Java at %s (Keycloak %s needs Java 21 or later; set KEYCLOAK_JAVA_HOME)", javaHome, keycloakVersion)
	}
	return home, javaHome, nil
}

// keycloak is a real Keycloak on loopback, configured through its admin
// REST API.
type keycloak struct {
	t      *testing.T
	base   string
	proc   *process
	client *http.Client
}

// startKeycloak starts Keycloak in dev mode on a free loopback port with
// its database and temporary files in dir, so runs share no state.
func startKeycloak(t *testing.T, dir string) *keycloak {
	t.Helper()
	home, javaHome, err := findKeycloak()
	if err != nil {
		missingPart(t, err, "make keycloak (or set KEYCLOAK_HOME)")
	}
	port, mgmt := freePort(t), freePort(t)
	data := filepath.Join(dir, "keycloak")
	must(t, os.MkdirAll(filepath.Join(data, "tmp"), 0o700))
	env := []string{
		"JAVA_HOME=" + javaHome,
		"KC_BOOTSTRAP_ADMIN_USERNAME=admin", "KC_BOOTSTRAP_ADMIN_PASSWORD=admin-e2e",
		// Temporary files and transaction logs beside the test's database,
		// not in the shared install.
		"JAVA_OPTS_APPEND=-Djava.io.tmpdir=" + filepath.Join(data, "tmp") +
			" -Dquarkus.transaction-manager.object-store.directory=" + filepath.Join(data, "tx"),
	}
	kc := &keycloak{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 30 * time.Second}}
	began := time.Now()
	kc.proc = startEnv(t, dir, "keycloak", env, filepath.Join(home, "bin", "kc.sh"), "start-dev",
		"--http-host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--http-management-port", strconv.Itoa(mgmt),
		"--db", "dev-file", "--db-url", "jdbc:h2:file:"+filepath.Join(data, "db")+";NON_KEYWORDS=VALUE")
	waitFor(t, "keycloak", keycloakStartTimeout, httpOK(kc.base+"/realms/master"))
	t.Logf("keycloak %s ready in %s", keycloakVersion, time.Since(began).Round(100*time.Millisecond))
	return kc
}

// do sends an admin API request and returns the answer's body and
// headers; want is the expected status.
func (kc *keycloak) do(method, path string, body any, want int) ([]byte, http.Header) {
	kc.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(kc.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, kc.base+"/admin/realms"+path, rd)
	must(kc.t, err)
	req.Header.Set("Authorization", "Bearer "+kc.password("master", "admin-cli", "admin", "admin-e2e"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kc.client.Do(req)
	must(kc.t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		kc.t.Fatalf("keycloak %s %s: %s: %s", method, path, resp.Status, out)
	}
	return out, resp.Header
}

// password signs in with the password grant (direct access grants) and
// returns the access token.
func (kc *keycloak) password(realm, client, user, password string) string {
	kc.t.Helper()
	resp, err := kc.client.PostForm(kc.base+"/realms/"+realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {client}, "username": {user}, "password": {password},
	})
	must(kc.t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	must(kc.t, json.NewDecoder(resp.Body).Decode(&tok))
	if tok.AccessToken == "" {
		kc.t.Fatalf("sign-in of %s at %s: %s %s", user, realm, resp.Status, tok.Error)
	}
	return tok.AccessToken
}

// shopRealm creates realm shop: client shop-app (public, direct access
// grants, audience "shop" in its access tokens), realm role beta, and
// users alice, bob (role beta) and carol, each with password pw-NAME.
func (kc *keycloak) shopRealm() {
	kc.do(http.MethodPost, "", map[string]any{"realm": "shop", "enabled": true}, http.StatusCreated)
	kc.do(http.MethodPost, "/shop/clients", map[string]any{
		"clientId": "shop-app", "enabled": true, "publicClient": true, "directAccessGrantsEnabled": true,
		"protocolMappers": []map[string]any{{
			"name": "audience shop", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]string{"included.custom.audience": "shop", "access.token.claim": "true"},
		}},
	}, http.StatusCreated)
	kc.do(http.MethodPost, "/shop/roles", map[string]any{"name": "beta"}, http.StatusCreated)
	roleJSON, _ := kc.do(http.MethodGet, "/shop/roles/beta", nil, http.StatusOK)
	var role map[string]any
	must(kc.t, json.Unmarshal(roleJSON, &role))
	for _, name := range []string{"alice", "bob", "carol"} {
		_, h := kc.do(http.MethodPost, "/shop/users", map[string]any{
			"username": name, "enabled": true, "email": name + "@example.com", "emailVerified": true,
			"firstName": name, "lastName": "e2e",
			"credentials": []map[string]any{{"type": "password", "value": "pw-" + name, "temporary": false}},
		}, http.StatusCreated)
		if name == "bob" {
			id := h.Get("Location")[strings.LastIndex(h.Get("Location"), "/")+1:]
			kc.do(http.MethodPost, "/shop/users/"+id+"/role-mappings/realm", []any{role}, http.StatusNoContent)
		}
	}
}

// rotate adds an RSA signing key with a higher priority than the realm's
// first, so new tokens are signed with it; the old key stays published.
func (kc *keycloak) rotate() {
	realmJSON, _ := kc.do(http.MethodGet, "/shop", nil, http.StatusOK)
	var realm struct {
		ID string `json:"id"`
	}
	must(kc.t, json.Unmarshal(realmJSON, &realm))
	kc.do(http.MethodPost, "/shop/components", map[string]any{
		"name": "rsa-rotated", "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm.ID,
		"config": map[string][]string{"priority": {"200"}, "enabled": {"true"}, "active": {"true"}, "algorithm": {"RS256"}, "keySize": {"2048"}},
	}, http.StatusCreated)
}

// kidOf reads a token's kid header (no verification: the test's own view).
func kidOf(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(header)
	must(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	must(t, json.Unmarshal(b, &h))
	return h.Kid
}

// oidcIdentity points graymesh at the realm by discovery; the subject is
// the user name, and the realm roles are the claim "roles". The token
// cache is off, so every request below is verified with the keys.
const oidcIdentity = `identity:
  device_cookie: gm_device
  jwt:
    issuer: {{ISSUER}}
    discovery: true
    audience: shop
    algorithms: [RS256]
    subject_claim: preferred_username
    claims: {roles: realm_access.roles}
    min_refresh_interval: 1s`

const oidcReleases = `releases:
  - name: shop-v2
    env: gray
    whitelist: [alice]
    claims: [{claim: roles, in: [beta]}]`

// TestOIDCKeycloak runs graymesh against a real Keycloak: users sign in by
// the password grant and call the edge through a real Envoy; the realm's
// signing key rotates; then Keycloak stops.
//
//nolint:funlen // one Keycloak, one story: sign-in, key rotation, then the provider gone
func TestOIDCKeycloak(t *testing.T) {
	dir := t.TempDir()
	kc := startKeycloak(t, dir)
	kc.shopRealm()
	issuer := kc.base + "/realms/shop"
	m := newMeshWith(t, strings.ReplaceAll(oidcIdentity, "{{ISSUER}}", issuer), oidcReleases)
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tokens[u] = kc.password("shop", "shop-app", u, "pw-"+u)
	}
	firstKid := kidOf(t, tokens["alice"])

	t.Run("sign-in decides", func(t *testing.T) {
		garbled := tokens["alice"][:len(tokens["alice"])-8] + "AAAAAAAA"
		forged := strings.SplitN(tokens["carol"], ".", 3)
		aliceClaims := strings.SplitN(tokens["alice"], ".", 3)[1]
		for name, tt := range map[string]struct {
			headers     map[string]string
			env, reason string
		}{
			"whitelisted user":                  {bearer(tokens["alice"]), "gray", "whitelist"},
			"user with the beta realm role":     {bearer(tokens["bob"]), "gray", "claim"},
			"other user: the rules":             {bearer(tokens["carol"]), "stable", "not-selected"},
			"no token":                          {nil, "stable", "no-identity"},
			"garbled signature":                 {bearer(garbled), "stable", "invalid-token"},
			"alice's claims, carol's signature": {bearer(forged[0] + "." + aliceClaims + "." + forged[2]), "stable", "invalid-token"},
			"not a token":                       {bearer("not.a.token"), "stable", "invalid-token"},
		} {
			r := m.mustGet(tt.headers)
			if r.Env != tt.env || r.Gray["x-gray-reason"] != tt.reason {
				t.Errorf("%s: env %q reason %q, want %q %q (%v)", name, r.Env, r.Gray["x-gray-reason"], tt.env, tt.reason, r.Gray)
			}
		}
		for _, ex := range []func(...string) (map[string]any, error){m.explainInForce, m.explain} {
			got, err := ex("--token", tokens["alice"])
			must(t, err)
			if got["issuer"] != issuer || got["kid"] != firstKid || got["key_source"] != issuer+"/protocol/openid-connect/certs" || got["subject"] != "alice" {
				t.Errorf("explain --token: %v", got)
			}
		}
	})

	t.Run("rotation", func(t *testing.T) {
		kc.rotate()
		rotated := kc.password("shop", "shop-app", "alice", "pw-alice")
		if kid := kidOf(t, rotated); kid == firstKid {
			t.Fatalf("keycloak still signs with %s after the rotation", kid)
		}
		// The first request with the new kid is anonymous (stable, 200) and
		// asks for a fetch; none fails or waits on it.
		var slowest time.Duration
		anonymous := 0
		testutil.Eventually(t, "a token signed with the new key served gray", testutil.Poll{Tries: 1500, Every: 20 * time.Millisecond}, func() error {
			began := time.Now()
			r, err := m.get(bearer(rotated))
			slowest = max(slowest, time.Since(began))
			must(t, err)
			if r.Env != "gray" {
				anonymous++
				return fmt.Errorf("still %s/%s", r.Env, r.Gray["x-gray-reason"])
			}
			return nil
		})
		t.Logf("new key accepted after %d anonymous request(s); slowest request %s", anonymous, slowest)
		if slowest > time.Second {
			t.Errorf("a request took %s while the key set was fetched", slowest)
		}
		if r := m.mustGet(bearer(tokens["alice"])); r.Env != "gray" {
			t.Errorf("token signed with the old key after the rotation: %v", r.Gray)
		}
		metrics := m.metrics(t)
		if v := metricValue(metrics, "graymesh_identity_jwks_unknown_kid_refreshes_total"); v < 1 {
			t.Errorf("unknown-kid refreshes %v:\n%s", v, metrics)
		}
	})

	t.Run("provider stopped", func(t *testing.T) {
		kc.proc.kill()
		// A kid nobody knows asks for a fetch, which fails: the set in force stays.
		junk := strings.SplitN(tokens["carol"], ".", 3)
		junkHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"not-in-the-set"}`))
		m.mustGet(bearer(junkHeader + "." + junk[1] + "." + junk[2]))
		waitFor(t, "a failed fetch", 20*time.Second, func() error {
			if v := metricValue(m.metrics(t), "graymesh_identity_jwks_fetch_errors_total"); v < 1 {
				return fmt.Errorf("fetch errors %v", v)
			}
			return nil
		})
		for user, env := range map[string]string{"alice": "gray", "bob": "gray", "carol": "stable"} {
			if r := m.mustGet(bearer(tokens[user])); r.Env != env {
				t.Errorf("%s with the provider down: %s (%v)", user, r.Env, r.Gray)
			}
		}
		must(t, httpOK(m.admin+"/readyz")())
	})
}

// metrics reads graymesh's /metrics.
func (m *mesh) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(m.admin + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}

// metricValue sums a series' samples (-1 when it has none).
func metricValue(text, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	sum, found := 0.0, false
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}
