package identity

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func rsaJWK(kid string, k *rsa.PrivateKey) map[string]string {
	b64 := base64.RawURLEncoding
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]string {
	b64 := base64.RawURLEncoding
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64.EncodeToString(k.X.Bytes()), "y": b64.EncodeToString(k.Y.Bytes())}
}

// writeJWKS replaces the key set file the way a Secret update or a
// deploy script does: write aside, then rename.
func writeJWKS(t testing.TB, dir string, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, b)
}

func writeFile(t testing.TB, dir string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "jwks.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "jwks.json")); err != nil {
		t.Fatal(err)
	}
}

func jwksIdentity() config.Identity {
	return config.Identity{JWT: config.JWT{Provider: config.Provider{
		SubjectClaim: "sub",
		Algorithms:   []string{"HS256", "RS256", "ES256"},
		Keys:         []config.Key{{ID: "hs", Algorithm: "HS256", SecretFile: "hs.secret"}},
		JWKSFile:     "jwks.json",
	}}}
}

// TestJWKSRotation: a key added to the JWKS file verifies without a
// restart, once the refresh interval since the last re-read has passed; a
// key removed stops verifying at the next re-read (which an unknown kid
// causes); a broken file keeps the keys in use.
func TestJWKSRotation(t *testing.T) {
	k := sharedKeys(t)
	writeJWKS(t, k.dir, rsaJWK("r1", k.rs))
	now := t0
	v, err := New(jwksIdentity(), func(p string) string { return filepath.Join(k.dir, p) },
		WithClock(func() time.Time { return now }), WithJWKSRefreshInterval(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(time.Hour)
	r1 := sign(t, jwt.SigningMethodRS256, "r1", claims("alice", exp), k.rs)
	e2 := sign(t, jwt.SigningMethodES256, "e2", claims("bob", exp), k.es)
	hs := sign(t, jwt.SigningMethodHS256, "hs", claims("carol", exp), k.hs)
	expect := func(step, token, problem string, reads int64) {
		t.Helper()
		if _, err := v.Verify(token); Problem(err) != problem {
			t.Fatalf("%s: problem %q (%v), want %q", step, Problem(err), err, problem)
		}
		if got := v.jwksReads.Load(); got != reads {
			t.Fatalf("%s: %d re-reads, want %d", step, got, reads)
		}
	}

	expect("start: r1 verifies", r1, "", 0)
	expect("start: e2 unknown, file re-read", e2, "unknown-kid", 1)

	writeJWKS(t, k.dir, rsaJWK("r1", k.rs), ecJWK("e2", k.es))
	now = now.Add(4 * time.Second)
	expect("e2 added, within the interval", e2, "unknown-kid", 1)
	now = now.Add(time.Second)
	expect("e2 added, interval passed", e2, "", 2)
	expect("r1 still verifies", r1, "", 2)
	expect("static key kept", hs, "", 2)

	// A known kid never causes a re-read; the next unknown one does, and
	// the keys it reads replace the old ones whole.
	writeJWKS(t, k.dir, ecJWK("e2", k.es))
	now = now.Add(5 * time.Second)
	expect("r1 removed, not yet re-read", r1, "", 2)
	expect("unknown kid: re-read", sign(t, jwt.SigningMethodRS256, "r3", claims("dave", exp), k.rs), "unknown-kid", 3)
	expect("r1 gone after the re-read", r1, "unknown-kid", 3)
	expect("e2 after r1's removal", e2, "", 3)
	expect("static key survives every re-read", hs, "", 3)

	writeFile(t, k.dir, []byte(`{"keys": [`))
	now = now.Add(5 * time.Second)
	expect("broken file: unknown kid re-reads", sign(t, jwt.SigningMethodRS256, "r9", claims("dave", exp), k.rs), "unknown-kid", 4)
	expect("broken file: keys in use kept", e2, "", 4)

	writeJWKS(t, k.dir, ecJWK("e2", k.es), rsaJWK("hs", k.rs))
	now = now.Add(5 * time.Second)
	expect("kid clashing with a static key: re-read refused", r1, "unknown-kid", 5)
	expect("kid clashing with a static key: static key still HS256", hs, "", 5)
}

// TestJWKSUnknownKidFlood: 1,000 tokens naming unknown kids, verified
// concurrently, cost at most one re-read of the file in the default
// interval, and the next interval allows the next; a verifier without a
// JWKS file never reads one.
func TestJWKSUnknownKidFlood(t *testing.T) {
	k := sharedKeys(t)
	writeJWKS(t, k.dir, rsaJWK("r1", k.rs))
	// The clock stands still, so however slowly the flood is verified it
	// all falls within one default interval.
	now := t0
	v, err := New(jwksIdentity(), func(p string) string { return filepath.Join(k.dir, p) }, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(time.Hour)
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = sign(t, jwt.SigningMethodHS256, fmt.Sprintf("unknown-%d", i), claims("mallory", exp), k.hs)
	}
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(tokens); i += 20 {
				if _, err := v.Verify(tokens[i]); Problem(err) != "unknown-kid" {
					t.Errorf("token %d: %v", i, err)
				}
			}
		}(w)
	}
	wg.Wait()
	if n := v.jwksReads.Load(); n > 1 {
		t.Fatalf("%d re-reads for 1,000 unknown kids, want at most 1", n)
	}
	now = now.Add(DefaultJWKSRefreshInterval)
	if _, err := v.Verify(tokens[0]); Problem(err) != "unknown-kid" {
		t.Fatal(err)
	}
	if n := v.jwksReads.Load(); n != 2 {
		t.Fatalf("%d re-reads once the interval passed, want 2", n)
	}

	static := k.verifier(t, k.identity(), &t0)
	if _, err := static.Verify(tokens[0]); Problem(err) != "unknown-kid" {
		t.Fatal(err)
	}
	if n := static.jwksReads.Load(); n != 0 {
		t.Fatalf("no jwks_file, yet %d reads", n)
	}
}

// TestJWKSRefreshConcurrent swaps the key set on every unknown kid while
// other goroutines verify: run with -race. A token whose key is in every
// version of the file always verifies.
func TestJWKSRefreshConcurrent(t *testing.T) {
	k := sharedKeys(t)
	writeJWKS(t, k.dir, rsaJWK("r1", k.rs))
	v, err := New(jwksIdentity(), func(p string) string { return filepath.Join(k.dir, p) }, WithJWKSRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	good := sign(t, jwt.SigningMethodRS256, "r1", claims("alice", exp), k.rs)
	added := sign(t, jwt.SigningMethodES256, "e2", claims("bob", exp), k.es)
	unknown := sign(t, jwt.SigningMethodHS256, "nope", claims("mallory", exp), k.hs)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				switch w % 3 {
				case 0:
					if _, err := v.Verify(good); err != nil {
						t.Errorf("r1 during rotation: %v", err)
						return
					}
				case 1:
					_, _ = v.Verify(unknown)
				default:
					_, _ = v.Verify(added)
				}
			}
		}(w)
	}
	writeJWKS(t, k.dir, rsaJWK("r1", k.rs), ecJWK("e2", k.es))
	wg.Wait()
	if _, err := v.Verify(added); err != nil {
		t.Fatalf("e2 after rotation: %v", err)
	}
	if !v.HasKeys() {
		t.Fatal("no keys")
	}
}

var (
	sharedOnce  sync.Once
	shared      keys
	sharedFiles = map[string][]byte{}
)

// sharedKeys is newKeys with the key pairs generated once per test binary
// (RSA generation dominates the package's test time); the key files are
// written to the test's own directory.
func sharedKeys(t testing.TB) *keys {
	t.Helper()
	sharedOnce.Do(func() {
		shared = *newKeys(t)
		for _, name := range []string{"rs.pem", "es.pem", "ed.pem", "hs.secret"} {
			b, err := os.ReadFile(filepath.Join(shared.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			sharedFiles[name] = b
		}
	})
	k := shared
	k.dir = t.TempDir()
	for name, b := range sharedFiles {
		if err := os.WriteFile(filepath.Join(k.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &k
}
