package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// writeKey writes key as PEM in the given encoding and returns the private
// key file and a matching public key file.
func writeKey(t *testing.T, dir, name string, key crypto.Signer, encoding string) (priv, pub string) {
	t.Helper()
	var block *pem.Block
	switch encoding {
	case "pkcs8":
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case "pkcs1":
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "sec1":
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	priv = filepath.Join(dir, name+".key")
	if err := os.WriteFile(priv, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub = filepath.Join(dir, name+".pub")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// TestTokenWithPrivateKey mints with --key for each key type and checks the
// header and claims, and that graymesh, configured with the public key,
// verifies the token (explain --token goes through the same verifier as
// the ext_proc service).
func TestTokenWithPrivateKey(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name, encoding, alg, wantAlg string
		key                          crypto.Signer
	}{
		{"rsa pkcs8 default", "pkcs8", "", "RS256", rsaKey},
		{"rsa pkcs1 PS384", "pkcs1", "PS384", "PS384", rsaKey},
		{"ec P-256 sec1", "sec1", "", "ES256", p256},
		{"ec P-384 pkcs8", "pkcs8", "ES384", "ES384", p384},
		{"ed25519", "pkcs8", "", "EdDSA", edKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv, pub := writeKey(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.key, tc.encoding)
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			must(t, os.WriteFile(cfg, []byte(`identity:
  jwt:
    algorithms: [`+tc.wantAlg+`]
    issuer: https://id.example
    audience: shop
    keys: [{kid: k1, alg: `+tc.wantAlg+`, public_key_file: `+pub+`}]
releases: [{name: r, env: gray, whitelist: [alice]}]
`), 0o600))
			args := []string{"token", "--config", cfg, "--key", priv, "--kid", "k1", "--subject", "alice", "--claim", "tier=beta"}
			if tc.alg != "" {
				args = append(args, "--alg", tc.alg)
			}
			code, out, errOut := runCLI(args...)
			if code != 0 {
				t.Fatalf("token: %d %s", code, errOut)
			}
			tok := strings.TrimSpace(out)
			parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return tc.key.Public(), nil },
				jwt.WithValidMethods([]string{tc.wantAlg}), jwt.WithIssuer("https://id.example"), jwt.WithAudience("shop"))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if parsed.Header["kid"] != "k1" {
				t.Errorf("kid %v", parsed.Header["kid"])
			}
			mc := parsed.Claims.(jwt.MapClaims)
			if mc["sub"] != "alice" || mc["tier"] != "beta" {
				t.Errorf("claims %v", mc)
			}
			code, out, errOut = runCLI("explain", "--config", cfg, "--token", tok, "--json")
			if code != 0 || !strings.Contains(out, `"reason": "whitelist"`) {
				t.Fatalf("explain: %d %s %s", code, out, errOut)
			}
		})
	}
}

func TestTokenRefusals(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv, rsaPub := writeKey(t, dir, "rsa", rsaKey, "pkcs8")
	ecPriv, _ := writeKey(t, dir, "ec", p256, "sec1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ES256 with an RSA key", []string{"--key", rsaPriv, "--alg", "ES256"}, "cannot be signed with this key"},
		{"ES384 with a P-256 key", []string{"--key", ecPriv, "--alg", "ES384"}, "it allows ES256"},
		{"HS with an RSA key", []string{"--key", rsaPriv, "--alg", "HS256"}, "cannot be signed"},
		{"a public key", []string{"--key", rsaPub}, `"PUBLIC KEY" is not a private key`},
		{"not PEM", []string{"--key", "../../examples/demo.yaml"}, "no PEM block"},
		{"config without an HMAC key", []string{"--config", "../../examples/demo.yaml", "--alg", "HS512"}, "no matching HMAC key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(append([]string{"token", "--subject", "alice"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d, stderr %q, want %q", code, errOut, tc.want)
			}
		})
	}
	if code, _, _ := runCLI("token", "--subject", "alice"); code != 2 {
		t.Fatalf("neither --config nor --key: code %d", code)
	}
}

// TestTokenHMACFromConfig mints with the config's HMAC key and its issuer
// and audience, and --issuer/--audience override them.
func TestTokenHMACFromConfig(t *testing.T) {
	parse := func(tok string) jwt.MapClaims {
		t.Helper()
		p, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(tok), jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Method.Alg() != "HS256" || p.Header["kid"] != "demo" {
			t.Fatalf("header %v", p.Header)
		}
		return p.Claims.(jwt.MapClaims)
	}
	code, out, errOut := runCLI("token", "--config", "../../examples/demo.yaml", "--subject", "alice")
	if code != 0 {
		t.Fatalf("token: %d %s", code, errOut)
	}
	if c := parse(out); c["iss"] != "graymesh-demo" || c["aud"] != "graymesh-demo" || c["sub"] != "alice" {
		t.Fatalf("claims %v", c)
	}
	_, out, _ = runCLI("token", "--config", "../../examples/demo.yaml", "--subject", "alice", "--audience", "other", "--issuer", "me")
	if c := parse(out); c["iss"] != "me" || c["aud"] != "other" {
		t.Fatalf("claims with overrides %v", c)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
