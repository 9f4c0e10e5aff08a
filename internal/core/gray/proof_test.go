package gray

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

const proofSecret = "graymesh-proof-test-hs256-secret-0123456789"

// proofPolicy compiles a config with mesh.native_returning_callers, an
// HS256 issuer and releases, in force at version 7.
func proofPolicy(t *testing.T, releases string) *Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(`
mesh: {native_returning_callers: true}
lane: {key: graymesh-proof-test-lane-key-0123456789}
membership: {enabled: true}
identity:
  jwt:
    issuer: idp
    audience: shop
    keys: [{kid: hs, alg: HS256, secret: `+proofSecret+`}]
releases:
`+releases+`
services:
  - {name: shop, environments: {stable: ["127.0.0.1:9001"], gray: ["127.0.0.1:9002"]}}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = "7"
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bearerFor is an authorization header with subject's token, expiring at
// exp; n tells two tokens of the same subject apart.
func bearerFor(t *testing.T, subject string, exp time.Time, n int) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": subject, "iss": "idp", "aud": "shop", "exp": exp.Unix(), "jti": fmt.Sprint(n)}).SignedString([]byte(proofSecret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// TestProofHandedAndHonoured: a caller graymesh decides gets a proof of
// the decision naming the end of its token, the environment, release and
// version; that token with the proof is decided by it (reason proof), as
// the edge's Envoy routes it; another token — another caller's, or a new
// one of the same caller — a forged proof, and one with a stress marker
// are not. In file mode the version a proof names is the config version
// with the config's hash: another node's version 7 is another config.
func TestProofHandedAndHonoured(t *testing.T) {
	p := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice], blacklist: [carol]}`)
	now := time.Now()
	hour := now.Add(time.Hour)
	aliceToken, carolToken := bearerFor(t, "alice", hour, 1), bearerFor(t, "carol", hour, 1)
	alice := p.Decide(Request{Authorization: aliceToken, Now: now})
	if alice.Env != "gray" || alice.Proof == "" {
		t.Fatalf("alice: %+v", alice)
	}
	pr, err := p.Lanes.VerifyProof(alice.Proof, now)
	if err != nil || !strings.HasSuffix(aliceToken, pr.Token) || len(pr.Token) != 22 || pr.Env != "gray" || pr.Release != "shop-v2" ||
		pr.Version != p.Plan.ProofVersion || !strings.HasPrefix(pr.Version, "7-") || pr.CallerHash != "" {
		t.Fatalf("alice's proof %+v (%v)", pr, err)
	}
	if _, err := p.Lanes.Verify(alice.Proof, now); err == nil {
		t.Fatal("a proof verified as a lane")
	}
	if _, err := p.Lanes.VerifyStress(alice.Proof, now); err == nil {
		t.Fatal("a proof verified as a stress marker")
	}
	carol := p.Decide(Request{Authorization: carolToken, Now: now})
	if carol.Env != "stable" || carol.Proof == "" {
		t.Fatalf("carol: %+v", carol)
	}
	forged := alice.Proof[:strings.LastIndexByte(alice.Proof, '.')] + carol.Proof[strings.LastIndexByte(carol.Proof, '.'):]
	for _, tt := range []struct {
		name string
		r    Request
		want Reason
	}{
		{"alice's token with its proof", Request{Authorization: aliceToken, Proof: alice.Proof}, ReasonProof},
		{"carol's token with its proof", Request{Authorization: carolToken, Proof: carol.Proof}, ReasonProof},
		{"alice's new token with the old one's proof", Request{Authorization: bearerFor(t, "alice", hour, 2), Proof: alice.Proof}, ReasonWhitelist},
		{"carol's token with alice's proof", Request{Authorization: carolToken, Proof: alice.Proof}, ReasonBlacklisted},
		{"a forged proof", Request{Authorization: aliceToken, Proof: forged}, ReasonWhitelist},
		{"no token", Request{Proof: alice.Proof}, ReasonNoIdentity},
		{"a stress marker", Request{Authorization: aliceToken, Proof: alice.Proof, StressMarker: "x"}, ReasonWhitelist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.Now = now
			o := p.Decide(tt.r)
			if o.Reason != tt.want {
				t.Fatalf("decided %+v, want reason %s", o.Decision, tt.want)
			}
			if tt.want == ReasonProof && o.Proof != "" {
				t.Fatal("a request decided on its proof was handed another")
			}
		})
	}
	other := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: another-config, whitelist: [alice]}`)
	if o := other.Decide(Request{Authorization: aliceToken, Proof: alice.Proof, Now: now}); o.Reason == ReasonProof {
		t.Fatal("another config's proof of the same version decided")
	}
	ex := p.Explain(Request{Authorization: aliceToken, Proof: alice.Proof, Now: now})
	if ex.Reason != ReasonProof || !strings.Contains(ex.Served, "proof") {
		t.Fatalf("explained %+v", ex)
	}
}

// TestProofNeverOutlivesItsToken: a proof expires with the caller's token
// when the token expires first.
func TestProofNeverOutlivesItsToken(t *testing.T) {
	p := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}`)
	now := time.Now()
	soon := now.Add(90 * time.Second).Truncate(time.Second)
	o := p.Decide(Request{Authorization: bearerFor(t, "alice", soon, 1), Now: now})
	pr, err := p.Lanes.VerifyProof(o.Proof, now)
	if err != nil || !pr.Expires.Equal(soon) {
		t.Fatalf("proof expires %v, want the token's %v (%v)", pr.Expires, soon, err)
	}
}

// TestProofNamesTheCallerOnlyForTheAnalysis: a proof carries the caller's
// hash, which the edge's access log hands the analysis, only when a
// release's analysis reads Envoy's access log; otherwise the hash would
// be bytes every request of the caller carries for nobody.
func TestProofNamesTheCallerOnlyForTheAnalysis(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name, release string
		want          func(*Policy) string
	}{
		{"no analysis", `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}`, func(*Policy) string { return "" }},
		{"an analysis", `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice], analysis: {interval: 30s, services: [shop]}}`,
			func(p *Policy) string { return p.SubjectHash("alice") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := proofPolicy(t, tt.release)
			if p.Plan.Mesh.AccessLog != (tt.name == "an analysis") {
				t.Fatalf("access log %v", p.Plan.Mesh.AccessLog)
			}
			o := p.Decide(Request{Authorization: bearerFor(t, "alice", now.Add(time.Hour), 1), Now: now})
			pr, err := p.Lanes.VerifyProof(o.Proof, now)
			if err != nil || pr.CallerHash != tt.want(p) {
				t.Fatalf("caller hash %q, want %q (%v)", pr.CallerHash, tt.want(p), err)
			}
		})
	}
}

// TestProofHandedAgainWhileHalfItsLifeIsLeft: a caller that comes back
// without its proof is handed the same proof (Ed25519 is deterministic,
// so a new signature of a later expiry would differ) while it has at
// least half its TTL left, and a new one after; another token of the same
// subject, or another decision, gets a proof of its own.
func TestProofHandedAgainWhileHalfItsLifeIsLeft(t *testing.T) {
	p := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}`)
	ttl := p.Plan.Callers.ProofTTL
	now := time.Now()
	alice := bearerFor(t, "alice", now.Add(24*time.Hour), 1)
	proofAt := func(auth string, at time.Time) string {
		o := p.Decide(Request{Authorization: auth, Now: at})
		if o.Proof == "" {
			t.Fatalf("no proof at %v", at.Sub(now))
		}
		return o.Proof
	}
	first := proofAt(alice, now)
	if again := proofAt(alice, now.Add(ttl/2-time.Second)); again != first {
		t.Fatal("a caller back within half the proof TTL was handed a new proof")
	}
	later := proofAt(alice, now.Add(ttl/2+time.Second))
	if later == first {
		t.Fatal("a proof with less than half its TTL left was handed again")
	}
	pr, err := p.Lanes.VerifyProof(later, now.Add(ttl/2+time.Second))
	if err != nil || !pr.Expires.After(now.Add(ttl)) {
		t.Fatalf("the new proof expires %v, want past %v (%v)", pr.Expires, now.Add(ttl), err)
	}
	if other := proofAt(bearerFor(t, "alice", now.Add(24*time.Hour), 2), now); other == first {
		t.Fatal("another token of the same subject was handed the first token's proof")
	}
	bob := bearerFor(t, "bob", now.Add(24*time.Hour), 1)
	if pr, err := p.Lanes.VerifyProof(proofAt(bob, now), now); err != nil || pr.Env != "stable" {
		t.Fatalf("bob's proof %+v (%v)", pr, err)
	}
}

// TestProofCacheIsBounded: a full cache evicts one entry per new caller.
func TestProofCacheIsBounded(t *testing.T) {
	c := newProofCache(2)
	exp := time.Now().Add(time.Minute)
	for i := range 5 {
		c.put(proofKey{token: fmt.Sprint(i)}, "p", exp)
	}
	if len(c.entries) != 2 {
		t.Fatalf("%d entries, want 2", len(c.entries))
	}
	c.put(proofKey{token: "x"}, "p1", exp)
	c.put(proofKey{token: "x"}, "p2", exp)
	if got, ok := c.get(proofKey{token: "x"}, exp, 0); !ok || got != "p2" || len(c.entries) != 2 {
		t.Fatalf("replacing: %q %v, %d entries", got, ok, len(c.entries))
	}
}

// TestNoProofWhereEnvoyCannotRoute: no proof is handed for an asserted
// subject or a config whose releases decide on
// request headers; and a killed release's proof decides nothing.
func TestNoProofWhereEnvoyCannotRoute(t *testing.T) {
	p := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}`)
	now := time.Now()
	token := bearerFor(t, "alice", now.Add(time.Hour), 1)
	if o := p.Decide(Request{Asserted: &Asserted{Subject: "alice"}, Now: now}); o.Proof != "" {
		t.Fatalf("asserted subject handed a proof: %+v", o)
	}
	headers := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, headers: [{name: x-beta, exact: "1"}]}`)
	if headers.Plan.Callers != nil {
		t.Fatal("a release with header rules left proofs routing")
	}
	if o := headers.Decide(Request{Authorization: token, Now: now}); o.Proof != "" {
		t.Fatal("a proof handed where Envoy routes none")
	}
	alice := p.Decide(Request{Authorization: token, Now: now})
	killed := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: [alice], state: killed}`)
	o := killed.Decide(Request{Authorization: token, Now: now})
	if o.Reason != ReasonKilled || o.Proof != "" {
		t.Fatalf("killed: %+v", o)
	}
	// A proof of the killed config's version (as if the kill had not
	// changed it) still decides nothing.
	pr, err := p.Lanes.VerifyProof(alice.Proof, now)
	if err != nil {
		t.Fatal(err)
	}
	pr.Version = killed.Plan.ProofVersion
	if o := killed.Decide(Request{Authorization: token, Proof: killed.Lanes.SignProof(pr), Now: now}); o.Reason != ReasonKilled {
		t.Fatalf("a killed release's proof decided %+v", o.Decision)
	}
}
