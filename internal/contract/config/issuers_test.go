package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestIssuersParse(t *testing.T) {
	cfg, err := Parse([]byte(`
identity:
  jwt:
    cookie: gm_token
    issuers:
      - issuer: https://kc.example/realms/shop
        discovery: true
        audiences: [shop]
        algorithms: [RS256]
        claims: {roles: realm_access.roles}
      - issuer: https://staff.example
        jwks_uri: https://staff.example/keys
        ca_file: staff-ca.pem
        audience: graymesh
        subject_prefix: "staff:"
        refresh_interval: 1h
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.Identity.JWT.Providers()
	if len(ps) != 2 || ps[0].SubjectClaim != "sub" || ps[1].SubjectClaim != "sub" {
		t.Fatalf("providers %+v", ps)
	}
	if ps[0].RefreshInterval.Duration != DefaultRefreshInterval || ps[0].MinRefreshInterval.Duration != DefaultMinRefreshInterval ||
		ps[1].RefreshInterval.Duration != time.Hour {
		t.Fatalf("intervals %+v %+v", ps[0], ps[1])
	}
	if cfg.Identity.JWT.SubjectClaim != "" || cfg.Identity.JWT.ProviderField(1) != "identity.jwt.issuers[1]" {
		t.Fatal("single-issuer fields set with issuers")
	}
	if c, err := cfg.Clone(); err != nil || len(c.Identity.JWT.Issuers) != 2 || c.Identity.JWT.Issuers[0].Claims["roles"] != "realm_access.roles" {
		t.Fatalf("clone %v %+v", err, c)
	}
}

// TestSingleIssuerUnchanged: a config written before issuers existed keeps
// its JSON form (so its content hash, and the version in force across an
// upgrade) and its meaning.
func TestSingleIssuerUnchanged(t *testing.T) {
	cfg, err := Parse([]byte(`
identity:
  jwt: {issuer: https://id.example, audience: shop, keys: [{kid: k1, alg: HS256, secret: "0123456789abcdef0123456789abcdef"}]}
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.Clone()
	b, _ := jsonOf(c.Identity.JWT)
	for _, absent := range []string{"Issuers", "JWKSURI", "Discovery", "CAFile", "RefreshInterval", "Claims", "Audiences", "SubjectPrefix"} {
		if strings.Contains(b, `"`+absent+`"`) {
			t.Errorf("JSON form has %s: %s", absent, b)
		}
	}
	if ps := cfg.Identity.JWT.Providers(); len(ps) != 1 || ps[0].Issuer != "https://id.example" || cfg.Identity.JWT.ProviderField(0) != "identity.jwt" {
		t.Fatalf("providers %+v", ps)
	}
}

func TestIssuersValidate(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"both forms", `{issuer: https://a.example, keys: [{kid: k, alg: HS256, secret: "0123456789abcdef0123456789abcdef"}], issuers: [{issuer: https://b.example, jwks_uri: https://b.example/k}]}`, "identity.jwt: issuer settings"},
		{"entry without issuer", `{issuers: [{jwks_uri: https://b.example/k}]}`, "identity.jwt.issuers[0].issuer: is empty"},
		{"duplicate issuer", `{issuers: [{issuer: https://b.example, jwks_uri: https://b.example/k}, {issuer: https://b.example, jwks_uri: https://b.example/k2}]}`, "identity.jwt.issuers[1].issuer: \"https://b.example\" duplicates issuers[0]"},
		{"entry without keys", `{issuers: [{issuer: https://b.example}]}`, "identity.jwt.issuers[0]: no keys"},
		{"discovery and jwks_uri", `{issuer: https://a.example, discovery: true, jwks_uri: https://a.example/k}`, "identity.jwt.jwks_uri: set one of discovery"},
		{"discovery without issuer", `{discovery: true}`, "identity.jwt.discovery: needs issuer"},
		{"plain http away from loopback", `{jwks_uri: http://idp.example/keys}`, "identity.jwt.jwks_uri: \"http://idp.example/keys\" is plain http"},
		{"discovery over plain http", `{issuer: http://idp.example, discovery: true}`, "identity.jwt.issuer: discovery:"},
		{"not a URL", `{jwks_uri: "keys.json"}`, "identity.jwt.jwks_uri"},
		{"ca_file without fetching", `{ca_file: ca.pem}`, "identity.jwt.ca_file: only applies"},
		{"intervals", `{jwks_uri: https://a.example/k, refresh_interval: 10s, min_refresh_interval: 1m}`, "identity.jwt.refresh_interval: min_refresh_interval 1m0s and refresh_interval 10s"},
		{"only HMAC with a key set", `{jwks_uri: https://a.example/k, algorithms: [HS256]}`, "identity.jwt.algorithms: lists only HMAC"},
		{"empty claim mapping", `{jwks_uri: https://a.example/k, claims: {roles: ""}}`, "identity.jwt.claims"},
		{"key alg in an entry", `{issuers: [{issuer: https://b.example, keys: [{kid: k, alg: none, secret: x}]}]}`, "identity.jwt.issuers[0].keys[0] (k).alg"},
	} {
		_, err := Parse([]byte("identity:\n  jwt: "+tt.yaml+"\n"), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	for _, ok := range []string{
		`{jwks_uri: http://127.0.0.1:8080/realms/shop/protocol/openid-connect/certs, audience: shop}`,
		`{issuer: http://localhost:8080/realms/shop, discovery: true, audience: shop}`,
		`{issuer: https://a.example, discovery: true, ca_file: ca.pem, audience: shop, refresh_interval: 5m, min_refresh_interval: 5s}`,
	} {
		if _, err := Parse([]byte("identity:\n  jwt: "+ok+"\n"), "f.yaml"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestIssuerWarnings(t *testing.T) {
	cfg, err := Parse([]byte(`
identity:
  jwt:
    issuers:
      - {issuer: https://a.example, jwks_uri: https://a.example/k}
      - {issuer: https://b.example, jwks_uri: https://b.example/k, audience: x, algorithms: [RS256]}
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(cfg.Warnings(), "\n")
	for _, want := range []string{"identity.jwt.issuers[0].audience: not set", "identity.jwt.issuers[0].algorithms: not set", "share a subject_prefix"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	if strings.Contains(w, "issuers[1].audience") {
		t.Errorf("warned about an issuer with an audience:\n%s", w)
	}
}

func jsonOf(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
