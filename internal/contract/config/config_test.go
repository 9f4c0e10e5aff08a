package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `
mesh:
  listener_port: 10000
identity:
  device_cookie: gm_device
  jwt:
    cookie: gm_token
    algorithms: [HS256]
    keys:
      - {kid: demo, alg: HS256, secret: demo-secret-0123456789abcdef-0123456789}
releases:
  - name: shop-v2
    env: gray
    whitelist: [alice]
    percent: 12.5
services:
  - name: shop
    environments:
      stable: [127.0.0.1:9101]
      gray: [127.0.0.1:9102]
`

func TestParseValidAppliesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(valid), "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Releases[0].Salt != "shop-v2" {
		t.Errorf("salt default %q, want the release name", cfg.Releases[0].Salt)
	}
	if cfg.Mesh.MessageTimeout.Duration != 50*time.Millisecond {
		t.Errorf("message_timeout default %s", cfg.Mesh.MessageTimeout)
	}
	if cfg.Mesh.ExtProcAddress != DefaultExtProcListen {
		t.Errorf("extproc_address default %q", cfg.Mesh.ExtProcAddress)
	}
	if got := cfg.Services[0].Domains; len(got) != 1 || got[0] != "shop" {
		t.Errorf("domains default %v", got)
	}
	if cfg.Identity.JWT.SubjectClaim != "sub" {
		t.Errorf("subject_claim default %q", cfg.Identity.JWT.SubjectClaim)
	}
	if BasisPoints(cfg.Releases[0].Percent) != 1250 {
		t.Errorf("basis points %d", BasisPoints(cfg.Releases[0].Percent))
	}
	if len(cfg.Content) != 12 || cfg.Version != "" {
		t.Errorf("content %q, version %q: a parsed file has a content hash and no version until it is in force", cfg.Content, cfg.Version)
	}
}

func TestParseContentHashFollowsContent(t *testing.T) {
	a, _ := Parse([]byte(valid), "a")
	b, _ := Parse([]byte(valid), "b")
	c, _ := Parse([]byte(valid+"\n# changed\n"), "c")
	if a.Content != b.Content || a.Content == c.Content {
		t.Fatalf("content hashes a=%s b=%s c=%s", a.Content, b.Content, c.Content)
	}
}

func TestValidateNegative(t *testing.T) {
	tests := []struct {
		name, replace, with string
		wantField           string
	}{
		{"unknown field", "percent: 12.5", "percnt: 12.5", "releases[0] (shop-v2).percnt: unknown field"},
		{"percent above 100", "percent: 12.5", "percent: 120", "releases[0] (shop-v2).percent"},
		{"percent negative", "percent: 12.5", "percent: -1", "releases[0] (shop-v2).percent"},
		{"percent precision", "percent: 12.5", "percent: 12.555", "releases[0] (shop-v2).percent"},
		{"env stable", "env: gray", "env: stable", "releases[0] (shop-v2).env"},
		{"env empty", "env: gray", "env: \"\"", "releases[0] (shop-v2).env"},
		{"bad release name", "name: shop-v2", "name: Shop V2", "releases[0] (Shop V2).name"},
		{"bad cidr", "percent: 12.5", "cidrs: [10.0.0.0/33]", "releases[0] (shop-v2).cidrs[0]"},
		{"header on graymesh header", "percent: 12.5", "headers: [{name: x-gray-env, exact: gray}]", "releases[0] (shop-v2).headers[0].name"},
		{"header upper case", "percent: 12.5", "headers: [{name: X-Region, exact: hz}]", "releases[0] (shop-v2).headers[0].name"},
		{"header two kinds", "percent: 12.5", "headers: [{name: x-region, exact: hz, prefix: h}]", "releases[0] (shop-v2).headers[0]: set exactly one"},
		{"header bad regex", "percent: 12.5", "headers: [{name: x-region, regex: \"(\"}]", "releases[0] (shop-v2).headers[0].regex"},
		{"claim empty in", "percent: 12.5", "claims: [{claim: tier}]", "releases[0] (shop-v2).claims[0].in"},
		{"alg none", "algorithms: [HS256]", "algorithms: [none]", "identity.jwt.algorithms[0]"},
		{"key alg none", "alg: HS256, secret", "alg: none, secret", "identity.jwt.keys[0] (demo).alg"},
		{"short inline secret", "secret: demo-secret-0123456789abcdef-0123456789", "secret: too-short", "identity.jwt.keys[0] (demo).secret: 9 bytes; a secret needs at least 32"},
		{"hs key with public key", "secret: demo-secret-0123456789abcdef-0123456789", "public_key_file: k.pem", "identity.jwt.keys[0] (demo).public_key_file"},
		{"key two materials", "secret: demo-secret-0123456789abcdef-0123456789", "secret: a, secret_file: b", "identity.jwt.keys[0] (demo): set exactly one"},
		{"no stable endpoints", "stable: [127.0.0.1:9101]", "canary: [127.0.0.1:9101]", "services[0] (shop).environments"},
		{"bad endpoint", "gray: [127.0.0.1:9102]", "gray: [127.0.0.1]", "services[0] (shop).environments.gray[0]"},
		{"bad timeout", "listener_port: 10000", "message_timeout: 20s", "mesh.message_timeout"},
		{"bad duration", "listener_port: 10000", "message_timeout: soon", "mesh.message_timeout: \"soon\" is not a duration"},
		{"same cookie", "cookie: gm_token", "cookie: gm_device", "identity.device_cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(valid, tt.replace) {
				t.Fatalf("fixture lacks %q", tt.replace)
			}
			_, err := Parse([]byte(strings.Replace(valid, tt.replace, tt.with, 1)), "bad.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("error %q does not name %q", err, tt.wantField)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	bad := `
releases:
  - {name: a, env: gray, percent: 101}
  - {name: a, env: stable}
  - {name: b, env: gray, traffic_percent: 5}
  - {name: c, env: gray, traffic_percent: 5}
services:
  - {name: shop, environments: {gray: ["127.0.0.1:1"]}}
  - {name: shop, environments: {stable: ["127.0.0.1:1"]}}
`
	_, err := Parse([]byte(bad), "bad.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"releases[0] (a).percent",
		"releases[1] (a).name: duplicates releases[0]",
		"releases[1] (a).env",
		"releases[3] (c).traffic_percent",
		"services[0] (shop).environments",
		"services[1] (shop).name: duplicates services[0]",
		"services[1] (shop).domains",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	if err := os.WriteFile(path, []byte("releases: [{name: x, env: gray, percent: 200}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "releases[0] (x).percent") {
		t.Fatalf("error %v does not name file and field", err)
	}
}

func TestWarnings(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(valid, "whitelist: [alice]", "whitelist: [alice]\n    blacklist: [alice]", 1)), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(cfg.Warnings(), "\n")
	if !strings.Contains(w, "whitelist[0]") || !strings.Contains(w, "keys[0].secret") {
		t.Fatalf("warnings %q", w)
	}
}

// TestAudienceWarning: keys without an audience accept tokens minted for
// any audience, which is legal but must be said; with an audience, or
// without keys, nothing is said.
func TestAudienceWarning(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		warn           bool
	}{
		{"keys, no audience", "", "", true},
		{"keys and an audience", "algorithms: [HS256]", "algorithms: [HS256]\n    audience: shop", false},
		{"jwks file, no audience", "keys:\n      - {kid: demo, alg: HS256, secret: demo-secret-0123456789abcdef-0123456789}", "jwks_file: jwks.json", true},
		{"no keys", "keys:\n      - {kid: demo, alg: HS256, secret: demo-secret-0123456789abcdef-0123456789}", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(strings.Replace(valid, tc.from, tc.to, 1)), "a.yaml")
			if err != nil {
				t.Fatal(err)
			}
			w := strings.Join(cfg.Warnings(), "\n")
			if got := strings.Contains(w, "identity.jwt.audience: not set"); got != tc.warn {
				t.Fatalf("audience warning %v, want %v: %q", got, tc.warn, w)
			}
		})
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.ExtProcListen != DefaultExtProcListen {
		t.Fatal("defaults not applied")
	}
}

func TestValidateSidecarsAndLane(t *testing.T) {
	const mesh = `
lane: {key_file: mesh.key, ttl: 5m}
tracing: {otlp_endpoint: 127.0.0.1:4317}
services:
  - name: frontend
    sidecar: {inbound_port: 10001, outbound_port: 15001, edge: true}
    environments: {stable: [127.0.0.1:9201]}
  - name: orders
    sidecar: {inbound_port: 10002, outbound_port: 15002}
    environments: {stable: [127.0.0.1:9202], gray: [127.0.0.1:9203]}
`
	cfg, err := Parse([]byte(mesh), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sidecars(); len(got) != 2 || got[0].Sidecar.Address != "127.0.0.1" {
		t.Fatalf("sidecars %+v", got)
	}
	for _, tt := range []struct{ name, replace, with, want string }{
		{"no lane key", "lane: {key_file: mesh.key, ttl: 5m}", "", "lane: services have sidecars"},
		{"short inline key", "key_file: mesh.key", "key: short", "lane.key"},
		{"ttl", "ttl: 5m", "ttl: 48h", "lane.ttl"},
		{"port reused", "outbound_port: 15002", "outbound_port: 15001", "services[1] (orders).sidecar.outbound_port"},
		{"port missing", "inbound_port: 10002, ", "", "services[1] (orders).sidecar.inbound_port"},
		{"bad otlp", "127.0.0.1:4317", "jaeger", "tracing.otlp_endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(mesh, tt.replace, tt.with, 1)), "mesh.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v does not name %q", err, tt.want)
			}
		})
	}
}
