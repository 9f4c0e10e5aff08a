package daemon

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
)

func version(t *testing.T, d *Daemon) int {
	t.Helper()
	v, err := strconv.Atoi(d.Config().Version)
	if err != nil {
		t.Fatalf("version %q: %v", d.Config().Version, err)
	}
	return v
}

func TestVersionIsMonotonicAcrossReloadAndRestart(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "graymesh.yaml"), filepath.Join(dir, "state")
	write(t, path, good)
	d := start(t, path, Options{StateDir: stateDir})
	if v := version(t, d); v != 1 {
		t.Fatalf("first version %d", v)
	}
	write(t, path, strings.Replace(good, "percent: 10", "percent: 20", 1))
	must(t, d.Reload())
	if v := version(t, d); v != 2 {
		t.Fatalf("after a change %d", v)
	}
	must(t, d.Reload())
	if v := version(t, d); v != 2 {
		t.Fatalf("an unchanged reload bumped the version to %d", v)
	}
	// A restart with the same file keeps the version; a change continues
	// the count.
	d2 := start(t, path, Options{StateDir: stateDir})
	if v := version(t, d2); v != 2 {
		t.Fatalf("after restart %d", v)
	}
	write(t, path, strings.Replace(good, "percent: 10", "percent: 30", 1))
	d3 := start(t, path, Options{StateDir: stateDir})
	if v := version(t, d3); v != 3 {
		t.Fatalf("restart with a changed file %d", v)
	}
}

func TestRestartWithBadOrEvictingFileServesTheConfigInForce(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "graymesh.yaml"), filepath.Join(dir, "state")
	write(t, path, strings.Replace(good, "percent: 10", "percent: 40", 1))
	start(t, path, Options{StateDir: stateDir})
	for name, content := range map[string]string{
		"broken":   "releases: [",
		"evicting": good, // 40 → 10 without rollback
	} {
		write(t, path, content)
		d := start(t, path, Options{StateDir: stateDir})
		if got := d.Config().Releases[0].Percent; got != 40 {
			t.Fatalf("%s file at restart: percent %v in force, want 40", name, got)
		}
		if st := d.last(); st.Result != "refused" {
			t.Fatalf("%s file at restart: last reload %+v", name, st)
		}
	}
}

func TestEvictingReloadRefusedUnlessRollback(t *testing.T) {
	d, path := newDaemon(t)
	for name, edit := range map[string]string{
		"lower percent":     "percent: 5",
		"new salt":          "percent: 10, salt: other",
		"removed whitelist": "whitelist: [], percent: 10",
	} {
		write(t, path, strings.Replace(strings.Replace(good, "percent: 10", edit, 1), "whitelist: [alice], ", "", boolInt(name == "removed whitelist")))
		err := d.Reload()
		if err == nil || !strings.Contains(err.Error(), "release shop-v2") {
			t.Fatalf("%s: reload error %v does not name the release", name, err)
		}
		if d.Config().Releases[0].Percent != 10 || d.Config().Releases[0].Salt != "shop-v2" {
			t.Fatalf("%s: config in force changed", name)
		}
	}
	write(t, path, strings.Replace(good, "percent: 10", "percent: 5", 1)+"change: {rollback: true, reason: error rate}\n")
	must(t, d.Reload())
	if d.Config().Releases[0].Percent != 5 {
		t.Fatal("declared rollback not applied")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestEffectiveAtHoldsTheChangeUntilItsInstant(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "graymesh.yaml")
	write(t, path, good)
	clock := clocktest.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	d := start(t, path, Options{Clock: clock})
	at := clock.Now().Add(time.Minute).Format(time.RFC3339)
	write(t, path, strings.Replace(good, "percent: 10", "percent: 50", 1)+"effective_at: "+at+"\n")
	must(t, d.Reload())
	if d.Config().Releases[0].Percent != 10 {
		t.Fatal("a future effective_at took effect at once")
	}
	clock.Advance(time.Minute - time.Second)
	if d.Config().Releases[0].Percent != 10 {
		t.Fatal("the change took effect a second before its instant")
	}
	clock.Advance(time.Second)
	if d.Config().Releases[0].Percent != 50 {
		t.Fatal("effective_at passed, change not in force")
	}
}

func TestAdminOverridesPersist(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "graymesh.yaml"), filepath.Join(dir, "state")
	write(t, path, good+"lane: {key: \"daemon-test-lane-key-0123456789abcdef\"}\nmembership: {enabled: true}\n")
	d := start(t, path, Options{StateDir: stateDir, AdminToken: "s3cret"})
	srv := httptest.NewServer(d.AdminHandler())
	defer srv.Close()
	post := func(p, token string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+p, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/v1/releases/shop-v2/freeze", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code := post("/v1/releases/shop-v2/freeze", "s3cret"); code != http.StatusOK {
		t.Fatalf("freeze: %d", code)
	}
	if code := post("/v1/releases/shop-v2/percent?value=5", "s3cret"); code != http.StatusUnprocessableEntity {
		t.Fatalf("lowering without rollback: %d", code)
	}
	if code := post("/v1/releases/shop-v2/percent?value=50", "s3cret"); code != http.StatusOK {
		t.Fatalf("raising: %d", code)
	}
	if code := post("/v1/releases/nope/kill", "s3cret"); code != http.StatusNotFound {
		t.Fatalf("unknown release: %d", code)
	}
	r := d.Config().Releases[0]
	if r.State != config.StateFrozen || r.Percent != 50 {
		t.Fatalf("in force: %+v", r)
	}
	// A restart keeps the overrides on top of the file.
	d2 := start(t, path, Options{StateDir: stateDir})
	if r := d2.Config().Releases[0]; r.State != config.StateFrozen || r.Percent != 50 {
		t.Fatalf("after restart: state %s percent %v", r.State, r.Percent)
	}
	srv2 := httptest.NewServer(d2.AdminHandler())
	defer srv2.Close()
	resp, err := http.Post(srv2.URL+"/v1/releases/shop-v2/kill", "", nil)
	must(t, err)
	resp.Body.Close()
	if d2.Config().Releases[0].State != config.StateKilled {
		t.Fatal("kill not in force")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Removing the key current tokens are signed with makes them unverifiable:
// every gray subject holding one becomes anonymous. The reload is refused
// and the old key keeps verifying, unless the file declares a rollback.
func TestReloadRefusesRemovedTokenKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "graymesh.yaml")
	keys := func(list string) string {
		return good + "identity:\n  jwt:\n    keys:\n" + list
	}
	const k1 = "      - {kid: k1, alg: HS256, secret: \"k1-secret-0123456789abcdef0123456\"}\n"
	const k2 = "      - {kid: k2, alg: HS256, secret: \"k2-secret-0123456789abcdef0123456\"}\n"
	write(t, path, keys(k1))
	d := start(t, path, Options{})
	before := d.Config().Version
	tok := mintHS256(t, "k1", "k1-secret-0123456789abcdef0123456", "alice")
	if c := d.ext.Policy().Verifier.FromRequest("Bearer "+tok, ""); c.Subject != "alice" {
		t.Fatalf("token signed with k1 before the change: %+v", c)
	}

	write(t, path, keys(k1+k2)) // rotation: add k2, keep k1
	must(t, d.Reload())
	rotated := d.Config().Version

	write(t, path, keys(k2)) // k1 removed
	err := d.Reload()
	want := `identity.jwt.keys: key "k1" (HS256) removed: tokens signed with it become anonymous`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "declare change: {rollback: true, reason: ...} in the config file (graymesh release: pass --rollback)") {
		t.Fatalf("reload without k1: %v", err)
	}
	if d.Config().Version != rotated || rotated == before {
		t.Fatalf("config in force %s, want %s", d.Config().Version, rotated)
	}
	if c := d.ext.Policy().Verifier.FromRequest("Bearer "+tok, ""); c.Subject != "alice" {
		t.Fatalf("token signed with k1 after the refused reload: %+v", c)
	}
	if st := d.last(); st.Result != "refused" || !strings.Contains(st.Error, want) {
		t.Fatalf("last reload %+v", st)
	}

	write(t, path, keys(k2)+"change: {rollback: true, reason: k1 leaked}\n")
	must(t, d.Reload())
	if c := d.ext.Policy().Verifier.FromRequest("Bearer "+tok, ""); c.Subject != "" || c.Problem == "" {
		t.Fatalf("token signed with k1 after the declared rollback: %+v", c)
	}
}

func mintHS256(t *testing.T, kid, secret, subject string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": subject, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString([]byte(secret))
	must(t, err)
	return s
}
