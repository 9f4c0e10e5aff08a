package gray

import (
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

// proofPolicy compiles a config with mesh.native_returning_callers, an
// ES256 issuer and releases, in force at version 7; it returns the policy
// and a function signing a token for a subject.
func proofPolicy(t *testing.T, releases string) (*Policy, func(subject string) string) {
	t.Helper()
	issuer := testutil.NewIssuer(t)
	cfg, err := config.Parse([]byte(`
mesh: {native_returning_callers: true}
lane: {key: graymesh-proof-test-lane-key-0123456789}
membership: {enabled: true}
identity:
  jwt:
    issuer: idp
    audience: shop
    subject_prefix: "u:"
    keys: [{kid: es, alg: ES256, public_key_file: `+issuer.PEMPath+`}]
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
	sign := func(subject string) string { return "Bearer " + issuer.Token(t, "idp", "shop", subject) }
	return p, sign
}

// TestProofHandedAndHonoured: a caller graymesh decides gets a proof of
// the decision naming it (the token's subject claim, without the issuer's
// subject prefix), the environment, release and version; the caller's own
// proof decides its next request (reason proof), as the edge's Envoy
// routes it; another caller's, a forged one, and one with a stress marker
// do not. In file mode the version a proof names is the config version
// with the file's content hash: another node's version 7 is another file.
func TestProofHandedAndHonoured(t *testing.T) {
	p, sign := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: ["u:alice"], blacklist: ["u:carol"]}`)
	if p.Plan.Callers == nil || !strings.Contains(p.Plan.Callers.JWKS, `"kid":"es"`) || p.Plan.Callers.SubjectPrefix != "u:" {
		t.Fatalf("plan's callers: %+v", p.Plan.Callers)
	}
	now := time.Now()
	alice := p.Decide(Request{Authorization: sign("alice"), Now: now})
	if alice.Env != "gray" || alice.Proof == "" {
		t.Fatalf("alice: %+v", alice)
	}
	pr, err := p.Lanes.VerifyProof(alice.Proof, now)
	if err != nil || pr.Caller != "alice" || pr.Env != "gray" || pr.Release != "shop-v2" || pr.Version != p.Plan.ProofVersion || !strings.HasPrefix(pr.Version, "7-") || pr.CallerHash != p.SubjectHash("u:alice") {
		t.Fatalf("alice's proof %+v (%v)", pr, err)
	}
	if _, err := p.Lanes.Verify(alice.Proof, now); err == nil {
		t.Fatal("a proof verified as a lane")
	}
	if _, err := p.Lanes.VerifyStress(alice.Proof, now); err == nil {
		t.Fatal("a proof verified as a stress marker")
	}
	carol := p.Decide(Request{Authorization: sign("carol"), Now: now})
	if carol.Env != "stable" || carol.Proof == "" {
		t.Fatalf("carol: %+v", carol)
	}
	forged := alice.Proof[:strings.LastIndexByte(alice.Proof, '.')] + carol.Proof[strings.LastIndexByte(carol.Proof, '.'):]
	other := p.Lanes.SignProof(pr, now, time.Minute)
	for _, tt := range []struct {
		name string
		r    Request
		want Reason
	}{
		{"alice's own proof", Request{Authorization: sign("alice"), Proof: alice.Proof}, ReasonProof},
		{"carol's own proof", Request{Authorization: sign("carol"), Proof: carol.Proof}, ReasonProof},
		{"bob with alice's proof", Request{Authorization: sign("bob"), Proof: alice.Proof}, ReasonNotSelected},
		{"carol with alice's proof", Request{Authorization: sign("carol"), Proof: alice.Proof}, ReasonBlacklisted},
		{"a forged proof", Request{Authorization: sign("bob"), Proof: forged}, ReasonNotSelected},
		{"no token", Request{Proof: alice.Proof}, ReasonNoIdentity},
		{"a stress marker", Request{Authorization: sign("alice"), Proof: other, StressMarker: "x"}, ReasonWhitelist},
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
	other2, sign2 := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: another-file, whitelist: ["u:alice"]}`)
	if o := other2.Decide(Request{Authorization: sign2("alice"), Proof: alice.Proof, Now: now}); o.Reason == ReasonProof {
		t.Fatal("another file's proof of the same version decided")
	}
	ex := p.Explain(Request{Authorization: sign("alice"), Proof: alice.Proof, Now: now})
	if ex.Reason != ReasonProof || !strings.Contains(ex.Served, "proof") {
		t.Fatalf("explained %+v", ex)
	}
}

// TestNoProofWhereEnvoyCannotRoute: no proof is handed for an asserted
// subject, a config not in force, or a config whose releases decide on
// request headers; and a killed release's proof decides nothing.
func TestNoProofWhereEnvoyCannotRoute(t *testing.T) {
	p, sign := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: ["u:alice"]}`)
	if o := p.Decide(Request{Asserted: &Asserted{Subject: "u:alice"}, Now: time.Now()}); o.Proof != "" {
		t.Fatalf("asserted subject handed a proof: %+v", o)
	}
	headers, sign2 := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, headers: [{name: x-beta, exact: "1"}]}`)
	if headers.Plan.Callers != nil {
		t.Fatal("a release with header rules left proofs routing")
	}
	if o := headers.Decide(Request{Authorization: sign2("alice"), Now: time.Now()}); o.Proof != "" {
		t.Fatal("a proof handed where Envoy routes none")
	}
	alice := p.Decide(Request{Authorization: sign("alice"), Now: time.Now()})
	killed, signK := proofPolicy(t, `  - {name: shop-v2, env: gray, salt: s, whitelist: ["u:alice"], state: killed}`)
	o := killed.Decide(Request{Authorization: signK("alice"), Now: time.Now()})
	if o.Reason != ReasonKilled || o.Proof != "" {
		t.Fatalf("killed: %+v", o)
	}
	// A proof of the same version and key for a killed release (as if
	// the kill had not changed the version) still decides nothing.
	pr, err := p.Lanes.VerifyProof(alice.Proof, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pr.Version = killed.Plan.ProofVersion
	if o := killed.Decide(Request{Authorization: signK("alice"), Proof: killed.Lanes.SignProof(pr, time.Now(), time.Minute), Now: time.Now()}); o.Reason != ReasonKilled {
		t.Fatalf("a killed release's proof decided %+v", o.Decision)
	}
}
