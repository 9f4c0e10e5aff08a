package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

// jwksServer is an issuer's key set endpoint whose answer a test changes.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   string
	status int
	header http.Header
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, header: http.Header{}}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.header {
		w.Header()[k] = v
	}
	w.WriteHeader(s.status)
	_, _ = w.Write([]byte(s.body))
}

func (s *jwksServer) set(status int, body string) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *jwksServer) setKeys(t *testing.T, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.set(http.StatusOK, string(b))
}

// remoteIdentity is an issuer whose keys come from url only.
func remoteIdentity(url string, algs ...string) config.Identity {
	return config.Identity{JWT: config.JWT{Provider: config.Provider{
		SubjectClaim: "sub", Issuer: "https://id.example", Audience: "shop", Algorithms: algs, JWKSURI: url,
		RefreshInterval: config.Duration{Duration: time.Hour}, MinRefreshInterval: config.Duration{Duration: 50 * time.Millisecond},
	}}}
}

func newRemoteVerifier(t *testing.T, cfg config.Identity, now *time.Time) *Verifier {
	t.Helper()
	opts := []Option{}
	if now != nil {
		opts = append(opts, WithClock(func() time.Time { return *now }))
	}
	v, err := New(cfg, func(p string) string { return p }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func waitFetched(t *testing.T, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitFetched(ctx); err != nil {
		t.Fatal(err)
	}
}

// eventually polls check (bounded) until it holds.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	testutil.Eventually(t, what, testutil.Within(10*time.Second), testutil.Holds(check))
}

// fetchedVerifier verifies HS256 with the static key "hs" and RS256,
// ES256 and EdDSA with keys "rs", "es", "ed" fetched from a key set.
func fetchedVerifier(t *testing.T, k *keys, now *time.Time) *Verifier {
	t.Helper()
	b64 := base64.RawURLEncoding
	srv := newJWKSServer(t, rsaJWK("rs", k.rs), ecJWK("es", k.es),
		map[string]string{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64.EncodeToString(k.ed.Public().(ed25519.PublicKey))})
	cfg := k.identity()
	cfg.JWT.Keys = cfg.JWT.Keys[:1]
	cfg.JWT.JWKSURI = srv.URL
	cfg.JWT.RefreshInterval.Duration, cfg.JWT.MinRefreshInterval.Duration = time.Hour, time.Hour
	v, err := New(cfg, func(p string) string { return filepath.Join(k.dir, p) }, WithClock(func() time.Time { return *now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	waitFetched(t, v)
	return v
}

// TestFetchedKeySetRefusesWhatMustNeverVerify: keys in a fetched set that
// are symmetric, of alg none, meant for encryption, of an algorithm not
// configured, or broken verify nothing; a set with nothing else is refused
// whole, and the set in force stays.
func TestFetchedKeySetRefusesWhatMustNeverVerify(t *testing.T) {
	k := sharedKeys(t)
	now := t0
	secret := []byte("published-hmac-secret-0123456789abcdef")
	b64 := base64.RawURLEncoding
	oct := map[string]string{"kty": "oct", "kid": "oct", "alg": "HS256", "k": b64.EncodeToString(secret)}
	octNoAlg := map[string]string{"kty": "oct", "kid": "oct2", "k": b64.EncodeToString(secret)}
	none := rsaJWK("none", k.rs)
	none["alg"] = "none"
	enc := rsaJWK("enc", k.rs)
	enc["use"], enc["alg"] = "enc", "RSA-OAEP"
	encOps := rsaJWK("enc-ops", k.rs)
	encOps["key_ops"] = "x" // replaced below: key_ops is an array
	es := ecJWK("es", k.es)
	broken := rsaJWK("broken", k.rs)
	broken["n"] = "!!!"
	body, _ := json.Marshal(map[string]any{"keys": []any{
		oct, octNoAlg, none, enc, es, broken,
		map[string]any{"kty": "RSA", "kid": "enc-ops", "key_ops": []string{"encrypt"}, "n": encOps["n"], "e": encOps["e"]},
		rsaJWK("good", k.rs),
	}})
	srv := newJWKSServer(t)
	srv.set(http.StatusOK, string(body))
	// HS256 is allowed (a static key could use it); RS256 too; ES256 not.
	cfg := remoteIdentity(srv.URL, "HS256", "RS256")
	cfg.JWT.Keys = []config.Key{{ID: "static", Algorithm: "HS256", Secret: "static-secret-0123456789abcdef-0123"}}
	v := newRemoteVerifier(t, cfg, &now)
	waitFetched(t, v)
	exp := t0.Add(time.Hour)
	none256 := signRaw(t, jwt.SigningMethodRS256, `{"alg":"none","kid":"none"}`, `{"sub":"mallory","exp":`+fmt.Sprint(exp.Unix())+`,"iss":"https://id.example","aud":"shop"}`, k.rs)
	for _, tt := range []struct{ name, token, problem string }{
		{"RS256 from the set", sign(t, jwt.SigningMethodRS256, "good", claims("alice", exp), k.rs), ""},
		{"HS256 with the published oct key", sign(t, jwt.SigningMethodHS256, "oct", claims("mallory", exp), secret), "unknown-kid"},
		{"HS256 with the published oct key, no kid", sign(t, jwt.SigningMethodHS256, "", claims("mallory", exp), secret), "signature"},
		{"HS256 with the published oct key without alg", sign(t, jwt.SigningMethodHS256, "oct2", claims("mallory", exp), secret), "unknown-kid"},
		{"alg none", sign(t, jwt.SigningMethodNone, "none", claims("mallory", exp), jwt.UnsafeAllowNoneSignatureType), "algorithm"},
		{"alg none header over an RSA signature", none256, "algorithm"},
		{"RS256 with the kid of the alg none key", sign(t, jwt.SigningMethodRS256, "none", claims("mallory", exp), k.rs), "unknown-kid"},
		{"RS256 with the encryption key", sign(t, jwt.SigningMethodRS256, "enc", claims("mallory", exp), k.rs), "unknown-kid"},
		{"RS256 with the key_ops encrypt key", sign(t, jwt.SigningMethodRS256, "enc-ops", claims("mallory", exp), k.rs), "unknown-kid"},
		{"ES256 not configured", sign(t, jwt.SigningMethodES256, "es", claims("mallory", exp), k.es), "algorithm"},
		{"RS256 with the broken key's kid", sign(t, jwt.SigningMethodRS256, "broken", claims("mallory", exp), k.rs), "unknown-kid"},
	} {
		if _, err := v.Verify(tt.token); Problem(err) != tt.problem {
			t.Errorf("%s: problem %q (%v), want %q", tt.name, Problem(err), err, tt.problem)
		}
	}
	st := v.sources.Status()[0]
	if len(st.Keys) != 1 || st.Keys[0] != "good" || len(st.Ignored) != 7 {
		t.Fatalf("status %+v", st)
	}

	// A set of nothing usable is refused: the good key stays.
	bad, _ := json.Marshal(map[string]any{"keys": []any{oct, none, enc, es}})
	good := sign(t, jwt.SigningMethodRS256, "good", claims("alice", exp), k.rs)
	for name, answer := range map[string]struct {
		status int
		body   string
	}{
		"only unusable keys": {200, string(bad)},
		"garbage":            {200, "<html>maintenance</html>"},
		"no keys array":      {200, `{"kids":[]}`},
		"empty set":          {200, `{"keys":[]}`},
		"keys not an array":  {200, `{"keys":{}}`},
		"too large":          {200, `{"keys":[` + strings.Repeat(" ", maxDocumentBytes) + `]}`},
		"server error":       {500, "oops"},
	} {
		srv.set(answer.status, answer.body)
		errs := v.sources.Status()[0].Errors
		// An unknown kid asks for a fetch.
		_, _ = v.Verify(sign(t, jwt.SigningMethodRS256, "rotated-"+name, claims("alice", exp), k.rs))
		eventually(t, name+": fetch refused", func() bool { return v.sources.Status()[0].Errors > errs })
		if _, err := v.Verify(good); err != nil {
			t.Fatalf("%s replaced the good set: %v", name, err)
		}
	}
}

// TestFetchedKeySetRotation: a token naming a new kid is anonymous at once
// (never waits), asks for a fetch, and verifies once it arrived; a flood
// of unknown kids fetches at most once per min_refresh_interval; a
// provider that goes down keeps the last set in force.
func TestFetchedKeySetRotation(t *testing.T) {
	k := sharedKeys(t)
	srv := newJWKSServer(t, rsaJWK("r1", k.rs))
	cfg := remoteIdentity(srv.URL, "RS256", "ES256")
	cfg.JWT.MinRefreshInterval.Duration = 300 * time.Millisecond
	v := newRemoteVerifier(t, cfg, nil)
	exp := time.Now().Add(time.Hour)
	r1 := sign(t, jwt.SigningMethodRS256, "r1", claims("alice", exp), k.rs)
	e2 := sign(t, jwt.SigningMethodES256, "e2", claims("bob", exp), k.es)
	waitFetched(t, v)
	if _, err := v.Verify(r1); err != nil {
		t.Fatal(err)
	}

	srv.setKeys(t, rsaJWK("r1", k.rs), ecJWK("e2", k.es))
	start := time.Now()
	if _, err := v.Verify(e2); Problem(err) != "unknown-kid" {
		t.Fatalf("new kid before the fetch: %v", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("an unknown kid waited %s", took)
	}
	eventually(t, "e2 verifies after the unknown-kid fetch", func() bool { _, err := v.Verify(e2); return err == nil })
	if st := v.sources.Status()[0]; st.UnknownKidRefreshes != 1 {
		t.Fatalf("unknown-kid refreshes %d, want 1", st.UnknownKidRefreshes)
	}

	// A flood: 500 unknown kids within well under one interval.
	before := srv.hits.Load()
	floodStart := time.Now()
	for i := 0; i < 500; i++ {
		_, _ = v.Verify(sign(t, jwt.SigningMethodRS256, fmt.Sprintf("junk-%d", i), claims("mallory", exp), k.rs))
	}
	// The flood asked for a fetch: wait until it has been made, then count
	// every fetch since the flood began.
	eventually(t, "the fetch the flood asked for", func() bool { return v.sources.Status()[0].UnknownKidRefreshes >= 2 })
	elapsed := time.Since(floodStart)
	allowed := int64(elapsed/cfg.JWT.MinRefreshInterval.Duration) + 2
	if n := srv.hits.Load() - before; n > allowed {
		t.Fatalf("%d fetches for 500 unknown kids in %s, want at most %d", n, elapsed, allowed)
	}

	// The provider goes down: the set in force stays.
	srv.Close()
	_, _ = v.Verify(sign(t, jwt.SigningMethodRS256, "r3", claims("carol", exp), k.rs))
	eventually(t, "fetch error counted", func() bool { return v.sources.Status()[0].LastError != "" })
	for _, tok := range []string{r1, e2} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("provider down: cached key refused: %v", err)
		}
	}
}

// TestNotFetchedYet: until the first fetch succeeds, tokens are anonymous
// with reason keys-unavailable and Pending names the source; the first
// good answer ends it without any request waiting.
func TestNotFetchedYet(t *testing.T) {
	k := sharedKeys(t)
	srv := newJWKSServer(t)
	srv.set(http.StatusServiceUnavailable, "starting")
	v := newRemoteVerifier(t, remoteIdentity(srv.URL, "RS256"), nil)
	tok := sign(t, jwt.SigningMethodRS256, "r1", claims("alice", time.Now().Add(time.Hour)), k.rs)
	eventually(t, "first fetch failed", func() bool { return strings.Contains(strings.Join(v.Pending(), ""), "503") })
	c := v.FromRequest("Bearer "+tok, "")
	if c.Subject != "" || c.Problem != "keys-unavailable" {
		t.Fatalf("caller %+v", c)
	}
	if c := v.FromRequest("Bearer "+sign(t, jwt.SigningMethodRS256, "", claims("alice", time.Now().Add(time.Hour)), k.rs), ""); c.Problem != "keys-unavailable" {
		t.Fatalf("no kid: %+v", c)
	}
	srv.setKeys(t, rsaJWK("r1", k.rs))
	waitFetched(t, v)
	if c := v.FromRequest("Bearer "+tok, ""); c.Subject != "alice" || c.KeyID != "r1" || c.KeySource != srv.URL || c.Issuer != "https://id.example" {
		t.Fatalf("caller %+v", c)
	}
}

func TestLifetime(t *testing.T) {
	spec := remoteSpec{least: 30 * time.Second, every: 10 * time.Minute}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 10 * time.Minute},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=120"}, 2 * time.Minute},
		{"max-age less age", map[string]string{"Cache-Control": "max-age=120", "Age": "60"}, time.Minute},
		{"max-age short: min interval", map[string]string{"Cache-Control": "max-age=1"}, 30 * time.Second},
		{"max-age long: refresh interval", map[string]string{"Cache-Control": "max-age=86400"}, 10 * time.Minute},
		{"no-cache: refresh interval", map[string]string{"Cache-Control": "no-cache"}, 10 * time.Minute},
		{"expires", map[string]string{"Date": now.Format(http.TimeFormat), "Expires": now.Add(5 * time.Minute).Format(http.TimeFormat)}, 5 * time.Minute},
		{"expires in the past", map[string]string{"Expires": now.Add(-time.Hour).Format(http.TimeFormat)}, 30 * time.Second},
		{"garbage", map[string]string{"Cache-Control": "max-age=soon", "Expires": "tomorrow"}, 10 * time.Minute},
	} {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := lifetime(h, now, spec); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestCacheHeadersScheduleTheNextFetch: a max-age answer is fetched again
// when it runs out, not at the (long) refresh interval.
func TestCacheHeadersScheduleTheNextFetch(t *testing.T) {
	k := sharedKeys(t)
	srv := newJWKSServer(t, rsaJWK("r1", k.rs))
	srv.header.Set("Cache-Control", "max-age=1")
	v := newRemoteVerifier(t, remoteIdentity(srv.URL, "RS256"), nil)
	waitFetched(t, v)
	eventually(t, "second fetch after max-age", func() bool { return srv.hits.Load() >= 2 })
}

// TestDiscoveryAndCABundle: the key set URL comes from the issuer's
// discovery document over HTTPS trusted through ca_file; a document naming
// another issuer is refused; without the CA nothing is fetched.
func TestDiscoveryAndCABundle(t *testing.T) {
	k := sharedKeys(t)
	var issuer string
	docIssuer := func() string { return issuer }
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/shop/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": docIssuer(), "jwks_uri": issuer + "/certs"})
	})
	mux.HandleFunc("/realms/shop/certs", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("r1", k.rs)}})
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted client's handshake failure is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	issuer = srv.URL + "/realms/shop"
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := func(caFile string) config.Identity {
		return config.Identity{JWT: config.JWT{Provider: config.Provider{
			SubjectClaim: "sub", Issuer: issuer, Audience: "shop", Algorithms: []string{"RS256"}, Discovery: true, CAFile: caFile,
			RefreshInterval: config.Duration{Duration: time.Hour}, MinRefreshInterval: config.Duration{Duration: time.Hour},
		}}}
	}
	tok := sign(t, jwt.SigningMethodRS256, "r1", jwt.MapClaims{"sub": "alice", "iss": issuer, "aud": "shop", "exp": time.Now().Add(time.Hour).Unix()}, k.rs)

	v := newRemoteVerifier(t, cfg(ca), nil)
	waitFetched(t, v)
	if c := v.FromRequest("Bearer "+tok, ""); c.Subject != "alice" || c.KeySource != issuer+"/certs" {
		t.Fatalf("caller %+v", c)
	}

	untrusted := newRemoteVerifier(t, cfg(""), nil)
	eventually(t, "untrusted certificate refused", func() bool {
		return strings.Contains(strings.Join(untrusted.Pending(), ""), "certificate")
	})

	mu.Lock()
	docIssuer = func() string { return "https://evil.example/realms/shop" }
	mu.Unlock()
	other := newRemoteVerifier(t, cfg(ca), nil)
	eventually(t, "document naming another issuer refused", func() bool {
		return strings.Contains(strings.Join(other.Pending(), ""), "names issuer")
	})
}

// TestIssuers: each issuer verifies its own tokens with its own keys,
// audiences, claims mapping and subject prefix; a token is routed by its
// iss, and an iss no issuer has is refused.
func TestIssuers(t *testing.T) {
	k := sharedKeys(t)
	staffKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	customers := newJWKSServer(t, rsaJWK("c1", k.rs))
	staff := newJWKSServer(t, rsaJWK("s1", staffKey))
	provider := func(iss, url, aud string) config.Provider {
		return config.Provider{SubjectClaim: "sub", Issuer: iss, Audiences: []string{aud, "common"}, Algorithms: []string{"RS256"}, JWKSURI: url,
			RefreshInterval: config.Duration{Duration: time.Hour}, MinRefreshInterval: config.Duration{Duration: time.Hour}}
	}
	c, s := provider("https://customers.example", customers.URL, "shop"), provider("https://staff.example", staff.URL, "admin")
	c.Claims = map[string]string{"roles": "realm_access.roles", "tier": "plan"}
	s.SubjectPrefix, s.SubjectClaim = "staff:", "preferred_username"
	v := newRemoteVerifier(t, config.Identity{JWT: config.JWT{Issuers: []config.Provider{c, s}}}, nil)
	waitFetched(t, v)
	exp := time.Now().Add(time.Hour).Unix()
	tok := func(key *rsa.PrivateKey, kid string, mc jwt.MapClaims) string {
		mc["exp"] = exp
		return sign(t, jwt.SigningMethodRS256, kid, mc, key)
	}
	cust := v.FromRequest("Bearer "+tok(k.rs, "c1", jwt.MapClaims{"sub": "alice", "iss": "https://customers.example", "aud": "shop",
		"realm_access": map[string]any{"roles": []string{"beta"}}, "plan": "gold", "tier": "spoofed"}), "")
	if cust.Subject != "alice" || cust.Issuer != "https://customers.example" || cust.KeyID != "c1" ||
		strings.Join(cust.Claims["roles"], ",") != "beta" || strings.Join(cust.Claims["tier"], ",") != "gold" {
		t.Fatalf("customer %+v", cust)
	}
	st := v.FromRequest("Bearer "+tok(staffKey, "s1", jwt.MapClaims{"sub": "u-1", "preferred_username": "alice", "iss": "https://staff.example", "aud": "common"}), "")
	if st.Subject != "staff:alice" || st.Issuer != "https://staff.example" {
		t.Fatalf("staff %+v", st)
	}
	for name, tt := range map[string]struct {
		token, problem string
	}{
		"staff token with a customer key":   {tok(k.rs, "c1", jwt.MapClaims{"sub": "x", "iss": "https://staff.example", "aud": "admin"}), "unknown-kid"},
		"customer token with the staff kid": {tok(staffKey, "s1", jwt.MapClaims{"sub": "x", "iss": "https://customers.example", "aud": "shop"}), "unknown-kid"},
		"customer token for the staff aud":  {tok(k.rs, "c1", jwt.MapClaims{"sub": "x", "iss": "https://customers.example", "aud": "admin"}), "audience"},
		"unknown issuer":                    {tok(k.rs, "c1", jwt.MapClaims{"sub": "x", "iss": "https://evil.example", "aud": "shop"}), "issuer"},
		"no issuer":                         {tok(k.rs, "c1", jwt.MapClaims{"sub": "x", "aud": "shop"}), "issuer"},
		"iss a number":                      {tok(k.rs, "c1", jwt.MapClaims{"sub": "x", "iss": 7, "aud": "shop"}), "claim-type"},
	} {
		if c := v.FromRequest("Bearer "+tt.token, ""); c.Problem != tt.problem || c.Subject != "" {
			t.Errorf("%s: %+v, want problem %q", name, c, tt.problem)
		}
	}
}

// TestSourcesSurviveReload: a Verifier built again with the same Sources
// (a config reload) has the fetched set at once; Retain stops fetching a
// source no verifier uses.
func TestSourcesSurviveReload(t *testing.T) {
	k := sharedKeys(t)
	srv := newJWKSServer(t, rsaJWK("r1", k.rs))
	sources := NewSources(nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sources.Start(ctx)
	build := func(algs ...string) *Verifier {
		v, err := New(remoteIdentity(srv.URL, algs...), func(p string) string { return p }, WithSources(sources))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := build("RS256")
	waitFetched(t, first)
	hits := srv.hits.Load()
	for _, algs := range [][]string{{"RS256"}, {"RS256", "ES256"}} {
		again := build(algs...)
		if p := again.Pending(); len(p) != 0 {
			t.Fatalf("reload with %v: pending %v", algs, p)
		}
		tok := sign(t, jwt.SigningMethodRS256, "r1", claims("alice", time.Now().Add(time.Hour)), k.rs)
		if _, err := again.Verify(tok); err != nil {
			t.Fatalf("reload with %v: %v", algs, err)
		}
	}
	if len(sources.Status()) != 2 {
		t.Fatalf("sources %+v", sources.Status())
	}
	sources.Retain(first)
	if st := sources.Status(); len(st) != 1 || strings.Join(st[0].Algorithms, ",") != "RS256" {
		t.Fatalf("after Retain: %+v", st)
	}
	if n := srv.hits.Load() - hits; n > 1 {
		t.Fatalf("reloads fetched %d times", n)
	}
}

// FuzzParseJWKS: whatever a provider answers, parsing never panics and
// never yields a key that is symmetric, of an algorithm outside the
// allowed ones, or of a type that does not fit its algorithm.
func FuzzParseJWKS(f *testing.F) {
	k := newKeys(f)
	b64 := base64.RawURLEncoding
	for _, seed := range []any{
		map[string]any{"keys": []any{rsaJWK("r1", k.rs), ecJWK("e1", k.es)}},
		map[string]any{"keys": []any{map[string]string{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}}},
		map[string]any{"keys": []any{map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(k.ed.Public().(ed25519.PublicKey))}}},
		map[string]any{"keys": []any{map[string]string{"kty": "RSA", "alg": "none", "n": "AQAB", "e": "AQAB"}}},
	} {
		b, _ := json.Marshal(seed)
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	allow := func(alg string) bool { return alg == "RS256" || alg == "ES256" || alg == "EdDSA" || alg == "HS256" }
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseJWKS(data, allow)
		if err != nil && len(keys) > 0 {
			t.Fatal("keys with an error")
		}
		for _, key := range keys {
			if !allow(key.alg) || !isAsymmetric(key.alg) {
				t.Fatalf("key %q with alg %q", key.kid, key.alg)
			}
			if err := fits(key.alg, key.key); err != nil {
				t.Fatalf("key %q: %v", key.kid, err)
			}
		}
	})
}
