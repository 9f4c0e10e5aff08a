package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

type keys struct {
	dir   string
	hs    []byte
	rs    *rsa.PrivateKey
	es    *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	rsPEM []byte
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{dir: t.TempDir(), hs: []byte("0123456789abcdef0123456789abcdef")}
	var err error
	if k.rs, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.es, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	write := func(name string, pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		if err := os.WriteFile(filepath.Join(k.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return b
	}
	k.rsPEM = write("rs.pem", &k.rs.PublicKey)
	write("es.pem", &k.es.PublicKey)
	write("ed.pem", k.ed.Public())
	if err := os.WriteFile(filepath.Join(k.dir, "hs.secret"), append(k.hs, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *keys) identity() config.Identity {
	return config.Identity{
		DeviceCookie: "gm_device",
		JWT: config.JWT{
			Cookie:    "gm_token",
			Leeway:    config.Duration{Duration: 30 * time.Second},
			CacheSize: 4,
			Provider: config.Provider{
				SubjectClaim: "sub",
				Algorithms:   []string{"HS256", "RS256", "ES256", "EdDSA"},
				Issuer:       "https://id.example",
				Audience:     "shop",
				Keys: []config.Key{
					{ID: "hs", Algorithm: "HS256", SecretFile: "hs.secret"},
					{ID: "rs", Algorithm: "RS256", PublicKeyFile: "rs.pem"},
					{ID: "es", Algorithm: "ES256", PublicKeyFile: "es.pem"},
					{ID: "ed", Algorithm: "EdDSA", PublicKeyFile: "ed.pem"},
				},
			},
		},
	}
}

func (k *keys) verifier(t testing.TB, cfg config.Identity, now *time.Time) *Verifier {
	t.Helper()
	v, err := New(cfg, func(p string) string { return filepath.Join(k.dir, p) }, WithClock(func() time.Time { return *now }))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claims(sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "iss": "https://id.example", "aud": "shop", "tier": "vip", "groups": []string{"beta", "qa"}, "age": 42}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, c jwt.Claims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	k := newKeys(t)
	now := t0
	v := k.verifier(t, k.identity(), &now)
	exp := t0.Add(time.Hour)
	_, otherRS, _ := func() (int, *rsa.PrivateKey, error) { r, err := rsa.GenerateKey(rand.Reader, 2048); return 0, r, err }()

	tests := []struct {
		name    string
		token   string
		problem string
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, "hs", claims("alice", exp), k.hs), ""},
		{"HS256 no kid", sign(t, jwt.SigningMethodHS256, "", claims("alice", exp), k.hs), ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, "rs", claims("alice", exp), k.rs), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, "es", claims("alice", exp), k.es), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, "ed", claims("alice", exp), k.ed), ""},
		{"forged HS256", sign(t, jwt.SigningMethodHS256, "hs", claims("alice", exp), []byte("not-the-secret-not-the-secret!!!")), "signature"},
		{"forged RS256", sign(t, jwt.SigningMethodRS256, "rs", claims("alice", exp), otherRS), "signature"},
		{"alg none", sign(t, jwt.SigningMethodNone, "", claims("alice", exp), jwt.UnsafeAllowNoneSignatureType), "algorithm"},
		{"HS256 keyed with the RS256 public key", sign(t, jwt.SigningMethodHS256, "rs", claims("alice", exp), k.rsPEM), "algorithm"},
		{"HS256 keyed with the RS256 public key, no kid", sign(t, jwt.SigningMethodHS256, "", claims("alice", exp), k.rsPEM), "signature"},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, "", claims("alice", exp), k.hs), "algorithm"},
		{"expired", sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(-time.Minute)), k.hs), "expired"},
		{"within leeway", sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(-10*time.Second)), k.hs), ""},
		{"no exp", sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"sub": "alice", "iss": "https://id.example", "aud": "shop"}, k.hs), "missing-claim"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "nbf": t0.Add(time.Hour).Unix(), "iss": "https://id.example", "aud": "shop"}, k.hs), "not-yet-valid"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "iss": "evil", "aud": "shop"}, k.hs), "issuer"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "iss": "https://id.example", "aud": "bank"}, k.hs), "audience"},
		{"no subject", sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"exp": exp.Unix(), "iss": "https://id.example", "aud": "shop"}, k.hs), "no-subject"},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, "other", claims("alice", exp), k.hs), "unknown-kid"},
		{"malformed", "not.a.token", "malformed"},
		{"truncated", sign(t, jwt.SigningMethodHS256, "hs", claims("alice", exp), k.hs)[:40], "malformed"},
		{"non-base64", "@@@.###.$$$", "malformed"},
		{"oversized", strings.Repeat("a", MaxTokenBytes+1), "oversized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(tt.token)
			if got := Problem(err); got != tt.problem {
				t.Fatalf("problem %q (err %v), want %q", got, err, tt.problem)
			}
			if tt.problem != "" {
				if id != nil {
					t.Fatal("identity returned with an error")
				}
				return
			}
			if id.Subject != "alice" {
				t.Fatalf("subject %q", id.Subject)
			}
			if got := id.Claims["groups"]; len(got) != 2 || got[0] != "beta" {
				t.Fatalf("groups %v", got)
			}
			if got := id.Claims["age"]; len(got) != 1 || got[0] != "42" {
				t.Fatalf("age %v", got)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	k := newKeys(t)
	now := t0
	v := k.verifier(t, k.identity(), &now)
	good := sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(time.Hour)), k.hs)
	other := sign(t, jwt.SigningMethodHS256, "hs", claims("bob", t0.Add(time.Hour)), k.hs)
	tests := []struct {
		name, auth, cookie      string
		subject, device, reason string
	}{
		{"bearer", "Bearer " + good, "", "alice", "", ""},
		{"bearer lower case", "bearer " + good, "", "alice", "", ""},
		{"cookie token", "", "a=1; gm_token=" + good + "; gm_device=d-1", "alice", "d-1", ""},
		{"bearer wins over cookie", "Bearer " + good, "gm_token=" + other, "alice", "", ""},
		{"basic auth ignored", "Basic YWxpY2U6cHc=", "", "", "", ""},
		{"device only", "", "gm_device=d-9", "", "d-9", ""},
		{"bad token keeps device", "Bearer x.y.z", "gm_device=d-9", "", "d-9", "malformed"},
		{"nothing", "", "", "", "", ""},
		{"cookie prefix is not the cookie", "", "xgm_token=" + good, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v.FromRequest(tt.auth, tt.cookie)
			if c.Subject != tt.subject || c.DeviceID != tt.device || c.Problem != tt.reason {
				t.Fatalf("got %+v", c)
			}
			if c.Subject == "" && c.Claims != nil {
				t.Fatal("claims without subject")
			}
		})
	}
}

func TestCacheHonoursExpAndBound(t *testing.T) {
	k := newKeys(t)
	now := t0
	cfg := k.identity()
	cfg.JWT.Leeway = config.Duration{}
	v := k.verifier(t, cfg, &now)
	tok := sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(time.Minute)), k.hs)
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d", v.cache.len())
	}
	now = t0.Add(time.Minute)
	if _, err := v.Verify(tok); Problem(err) != "expired" {
		t.Fatalf("served from cache past exp: err %v", err)
	}
	now = t0
	for i := 0; i < 20; i++ {
		tok := sign(t, jwt.SigningMethodHS256, "hs", claims("user-"+string(rune('a'+i)), t0.Add(time.Hour)), k.hs)
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.len(); n > cfg.JWT.CacheSize {
			t.Fatalf("cache grew to %d > %d", n, cfg.JWT.CacheSize)
		}
	}
}

func TestJWKS(t *testing.T) {
	k := newKeys(t)
	b64 := base64.RawURLEncoding
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "jw-rs", "alg": "RS256", "n": b64.EncodeToString(k.rs.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.rs.E)).Bytes())},
		{"kty": "EC", "kid": "jw-es", "crv": "P-256", "x": b64.EncodeToString(k.es.X.Bytes()), "y": b64.EncodeToString(k.es.Y.Bytes())},
		{"kty": "OKP", "kid": "jw-ed", "crv": "Ed25519", "x": b64.EncodeToString(k.ed.Public().(ed25519.PublicKey))},
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
	}}
	b, _ := json.Marshal(set)
	if err := os.WriteFile(filepath.Join(k.dir, "jwks.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	now := t0
	v := k.verifier(t, config.Identity{JWT: config.JWT{Provider: config.Provider{SubjectClaim: "sub", JWKSFile: "jwks.json"}}}, &now)
	exp := t0.Add(time.Hour)
	for name, tok := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, "jw-rs", claims("alice", exp), k.rs),
		"ES256": sign(t, jwt.SigningMethodES256, "jw-es", claims("alice", exp), k.es),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, "jw-ed", claims("alice", exp), k.ed),
	} {
		if id, err := v.Verify(tok); err != nil || id.Subject != "alice" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, "jw-rs", claims("alice", exp), k.rsPEM)); Problem(err) != "algorithm" {
		t.Errorf("HS256 with JWKS RSA kid: %v", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	k := newKeys(t)
	cfg := k.identity()
	cfg.JWT.Keys = append(cfg.JWT.Keys,
		config.Key{ID: "short", Algorithm: "HS256", SecretFile: "short"},
		config.Key{ID: "missing", Algorithm: "RS256", PublicKeyFile: "missing.pem"},
		config.Key{ID: "wrongtype", Algorithm: "ES256", PublicKeyFile: "rs.pem"},
	)
	_ = os.WriteFile(filepath.Join(k.dir, "short"), []byte("tiny"), 0o600)
	_, err := New(cfg, func(p string) string { return filepath.Join(k.dir, p) })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"keys[4]", "at least 32", "keys[5]", "keys[6]", "not a ES256 public key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestCookieValue(t *testing.T) {
	for _, tt := range []struct{ header, name, want string }{
		{"a=1; b=2", "b", "2"},
		{"a=1;b=2", "b", "2"},
		{`a="quoted"`, "a", "quoted"},
		{"ab=1", "a", ""},
		{"", "a", ""},
		{"a", "a", ""},
	} {
		if got := CookieValue(tt.header, tt.name); got != tt.want {
			t.Errorf("CookieValue(%q, %q) = %q, want %q", tt.header, tt.name, got, tt.want)
		}
	}
}

// TestCacheCollisionIsAMiss: an entry found by the token's hash is served
// only for the very token stored with it. Two real tokens with the same
// 64-bit hash cannot be made to order, so the collision is planted: the
// slot of bob's token holds alice's token and identity.
func TestCacheCollisionIsAMiss(t *testing.T) {
	k := newKeys(t)
	now := t0
	v := k.verifier(t, k.identity(), &now)
	alice := sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(time.Hour)), k.hs)
	bob := sign(t, jwt.SigningMethodHS256, "hs", claims("bob", t0.Add(time.Hour)), k.hs)
	id, err := v.Verify(alice)
	if err != nil {
		t.Fatal(err)
	}
	v.cache.entries[v.cache.key(bob)] = cacheEntry{token: alice, id: id}
	if _, hit := v.cache.get(bob, now); hit {
		t.Fatal("a colliding slot served another token's identity")
	}
	got, err := v.Verify(bob)
	if err != nil || got.Subject != "bob" {
		t.Fatalf("bob verified as %+v, %v", got, err)
	}
	if got, _ := v.cache.get(bob, now); got == nil || got.Subject != "bob" {
		t.Fatalf("bob's verification did not replace the colliding entry: %+v", got)
	}
}

// TestCachedVerifyDoesNotAllocate: a cache hit costs no allocation.
func TestCachedVerifyDoesNotAllocate(t *testing.T) {
	k := newKeys(t)
	now := t0
	v := k.verifier(t, k.identity(), &now)
	tok := sign(t, jwt.SigningMethodHS256, "hs", claims("alice", t0.Add(time.Hour)), k.hs)
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(tok) }); n != 0 {
		t.Fatalf("%.0f allocations per cached verification, want 0", n)
	}
}
