package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	code, out, _ := runCLI("validate", "../../examples/demo.yaml")
	if code != 0 || !strings.Contains(out, "ok: ../../examples/demo.yaml") {
		t.Fatalf("demo config: code %d, %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("releases:\n  - {name: a, env: gray, percent: 101}\n  - {name: b, env: stable}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("validate", bad)
	if code != 1 {
		t.Fatalf("bad config exit %d", code)
	}
	for _, want := range []string{bad, "releases[0] (a).percent", "releases[1] (b).env"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestTokenAndExplainAgree(t *testing.T) {
	code, tok, errOut := runCLI("token", "--config", "../../examples/demo.yaml", "--subject", "alice")
	if code != 0 {
		t.Fatalf("token: %d %s", code, errOut)
	}
	code, out, errOut := runCLI("explain", "--config", "../../examples/demo.yaml", "--token", strings.TrimSpace(tok), "--json")
	if code != 0 || !strings.Contains(out, `"served": "gray"`) || !strings.Contains(out, `"reason": "whitelist"`) {
		t.Fatalf("explain alice: %d %s %s", code, out, errOut)
	}
	if !strings.Contains(out, `"kid": "demo"`) || !strings.Contains(out, `"key_source": "identity.jwt.keys[0]"`) {
		t.Fatalf("explain names no key: %s", out)
	}
	_, out, _ = runCLI("explain", "--config", "../../examples/demo.yaml", "--token", strings.TrimSpace(tok))
	if !strings.Contains(out, "verified by: issuer graymesh-demo, key \"demo\" from identity.jwt.keys[0]\n") {
		t.Fatalf("explain text names no key:\n%s", out)
	}
	_, out, _ = runCLI("explain", "--config", "../../examples/demo.yaml", "--token", strings.TrimSpace(tok)+"x", "--json")
	if !strings.Contains(out, `"reason": "invalid-token"`) || !strings.Contains(out, `"token_problem": "signature"`) {
		t.Fatalf("explain forged: %s", out)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCLI(); code != 2 || !strings.Contains(errOut, "Commands:") {
		t.Fatalf("no args: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI("explain", "--help"); code != 0 || !strings.Contains(errOut, "--subject") {
		t.Fatalf("help: %d %s", code, errOut)
	}
	if code, _, _ := runCLI("serve"); code != 2 {
		t.Fatalf("serve without --config: %d", code)
	}
}

func TestVersion(t *testing.T) {
	old := version
	version = "v1.2.3-test"
	defer func() { version = old }()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"-v"}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || out != "v1.2.3-test\n" {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// TestValidateWarnsWithoutAudience: keys without an audience are accepted
// but said loudly.
func TestValidateWarnsWithoutAudience(t *testing.T) {
	b, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "no-aud.yaml")
	noAud := strings.Replace(string(b), "    audience: graymesh-demo", "", 1)
	if noAud == string(b) {
		t.Fatal("examples/demo.yaml sets no audience")
	}
	if err := os.WriteFile(path, []byte(noAud), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("validate", path)
	if code != 0 || !strings.Contains(out, "warning: identity.jwt.audience: not set") {
		t.Fatalf("code %d:\n%s", code, out)
	}
	if _, out, _ = runCLI("validate", "../../examples/demo.yaml"); strings.Contains(out, "audience") {
		t.Fatalf("demo config warns about its audience:\n%s", out)
	}
}

// TestReleaseAdminFromEnv: $GRAYMESH_ADMIN moves release's default admin
// address (the README test runs `graymesh release` against a demo on its
// own ports that way).
func TestReleaseAdminFromEnv(t *testing.T) {
	srv := echoAdmin(t, func(r *http.Request) string { return r.Method + " " + r.URL.Path })
	t.Setenv("GRAYMESH_ADMIN", srv.URL)
	if code, out, errOut := runCLI("release", "list"); code != 0 || !strings.Contains(out, `"name": "GET /v1/releases"`) {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := runCLI("release", "freeze", "shop-v2", "--admin", srv.URL+"/x"); code != 0 || !strings.Contains(out, `"name": "POST /x/v1/releases/shop-v2/freeze"`) {
		t.Fatalf("--admin beats the environment: code %d, %q", code, out)
	}
}

// TestReleaseQuery: value, rollback and reason travel in the query.
func TestReleaseQuery(t *testing.T) {
	srv := echoAdmin(t, func(r *http.Request) string { return r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery })
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"kill", "shop-v2", "--reason", "5xx spike"}, "POST /v1/releases/shop-v2/kill?reason=5xx+spike"},
		{[]string{"percent", "shop-v2", "--value", "12.5", "--rollback", "--reason", "slo"}, "POST /v1/releases/shop-v2/percent?reason=slo&rollback=true&value=12.5"},
		{[]string{"reset", "shop-v2"}, "POST /v1/releases/shop-v2/reset?rollback=true"},
	} {
		args := append([]string{"release"}, tt.args...)
		code, out, errOut := runCLI(append(args, "--admin", srv.URL)...)
		var got struct{ Name string }
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Name != tt.want {
			t.Errorf("%v: code %d, %q (want %q) %s", tt.args, code, out, tt.want, errOut)
		}
	}
}

// echoAdmin is an admin API that answers every call with a release (a
// list of one for GET /v1/releases) named by what echo says of the
// request.
func echoAdmin(t *testing.T, echo func(*http.Request) string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := map[string]string{"name": echo(r)}
		if r.Method == http.MethodGet {
			_ = json.NewEncoder(w).Encode([]any{rs})
			return
		}
		_ = json.NewEncoder(w).Encode(rs)
	}))
	t.Cleanup(srv.Close)
	return srv
}
