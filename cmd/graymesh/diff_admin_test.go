package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// inForce has secrets inline, which GET /v1/config redacts.
const inForce = `
identity:
  jwt:
    keys: [{kid: k1, alg: HS256, secret: "k1-secret-0123456789abcdef0123456"}]
lane: {key: "lane-key-0123456789abcdef0123456789"}
membership: {enabled: true}
releases:
  - {name: shop-v2, env: gray, whitelist: [alice], percent: 30}
`

// startDaemon runs a graymesh in this process on path and serves its admin
// API, which wants token.
func startDaemon(t *testing.T, path, token string) string {
	t.Helper()
	d, err := daemon.New(context.Background(), path, daemon.Options{AdminToken: token}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.AdminHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDiffCommandAdmin(t *testing.T) {
	admin := startDaemon(t, writeConfig(t, "graymesh.yaml", inForce), "s3cret")
	tokenFile := writeConfig(t, "token", "s3cret\n")

	// README's old workflow: the config in force comes back redacted and
	// no longer loads.
	req, _ := http.NewRequest(http.MethodGet, admin+"/v1/config", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	redacted, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, _, err := runDiff(writeConfig(t, "in-force.yaml", string(redacted)), writeConfig(t, "next.yaml", inForce)); err == nil || !strings.Contains(err.Error(), "lane.key") {
		t.Fatalf("diff of the redacted config: %v", err)
	}

	// NEXT names its key file relative to its own directory, which is not
	// the daemon's: the CLI resolves it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k1.secret"), []byte("k1-secret-0123456789abcdef0123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ramp := strings.NewReplacer(`secret: "k1-secret-0123456789abcdef0123456"`, "secret_file: k1.secret", "percent: 30", "percent: 50").Replace(inForce)
	removed := strings.Replace(inForce, "kid: k1", "kid: k2", 1)
	tests := []struct {
		name, next string
		want       []string
		notWant    []string
	}{
		{"ramp with the key moved to a relative file", ramp, []string{
			"old:  config in force (", ") (version 1, content ",
			"new:  " + filepath.Join(dir, "next.yaml") + " (content ",
			"release shop-v2: stable → gray 19.99%, gray → stable 0.00%\n",
			"  - percent raised 30 → 50\n",
			"no subject leaves gray",
		}, []string{"lane key changed", "identity.jwt.keys"}},
		{"signing key removed", removed, []string{
			`evictions (1):` + "\n" + `  rule key-removed: identity.jwt.keys: key "k1" (HS256) removed: tokens signed with it become anonymous`,
			"this change would be refused unless NEW declares it a rollback",
		}, []string{"lane key changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := filepath.Join(dir, "next.yaml")
			if err := os.WriteFile(next, []byte(tt.next), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := runDiff("--admin", admin, "--admin-token-file", tokenFile, next, "--sample", "20000", "--at", "2026-11-21T12:00:00Z")
			if err != nil {
				t.Fatalf("diff --admin: %v %s", err, errOut)
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

	next := writeConfig(t, "next.yaml", inForce)
	if _, _, err := runDiff("--admin", admin, next); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the admin token: %v", err)
	}
	bad := writeConfig(t, "bad.yaml", "releases: [{name: x, env: stable}]")
	if _, _, err := runDiff("--admin", admin, "--admin-token-file", tokenFile, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a bad NEW is reported with its name: %v", err)
	}
	for _, args := range [][]string{{"--admin", admin}, {"--admin", admin, next, next}} {
		if _, _, err := runDiff(args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
