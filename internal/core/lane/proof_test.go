package lane

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// TestProofDecisionClaim: a proof's decision travels as one claim (the
// one header Envoy's proof routes match) and reads back whole, with or
// without a release; a decision claim that does not split into version,
// environment and release is refused.
func TestProofDecisionClaim(t *testing.T) {
	s := signer(t, meshKey)
	for _, want := range []Proof{
		{Token: "abcdefghijklmnopqrstuv", Env: "gray", Release: "shop-v2", Version: "7-0a1b", CallerHash: "c0ffee", Expires: now.Add(time.Minute)},
		{Token: "abcdefghijklmnopqrstuv", Env: "stable", Version: "7", Expires: now.Add(time.Minute)},
	} {
		tok := s.SignProof(want)
		got, err := s.VerifyProof(tok, now)
		sameExpiry := got.Expires.Equal(want.Expires)
		got.Expires = want.Expires
		if err != nil || got != want || !sameExpiry {
			t.Fatalf("proof of %+v read back as %+v (%v)", want, got, err)
		}
		var c proofClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil || c.Decision != wire.ProofDecision(want.Version, want.Env, want.Release) {
			t.Fatalf("decision claim %q (%v)", c.Decision, err)
		}
	}
	for _, decision := range []string{"", "7", "7/gray", "/gray/", "7//shop-v2", "7/gray/shop/v2"} {
		c := proofClaims{Token: "abcdefghijklmnopqrstuv", Decision: decision, RegisteredClaims: jwt.RegisteredClaims{Issuer: wire.ProofIssuer, ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.private)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyProof(tok, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("decision %q: %v, want malformed", decision, err)
		}
	}
}
