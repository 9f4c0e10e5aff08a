package lane

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Proof is a verified returning caller's proof: the edge's decision for
// the caller whose authorization header ends with Token, under config
// Version, which the edge's Envoy routes on without asking graymesh
// (mesh.native_returning_callers).
type Proof struct {
	// Token is the end of the caller's authorization header (its token's
	// signature): the proof routes only the requests of that token.
	Token        string
	Env, Release string
	Version      string
	// CallerHash is the keyed caller hash the access log carries to the
	// analysis.
	CallerHash string
	Expires    time.Time
}

// proofClaims are a proof's JWT claims; wire names each.
type proofClaims struct {
	Token      string `json:"t"`
	Decision   string `json:"d"`
	CallerHash string `json:"h,omitempty"`
	jwt.RegisteredClaims
}

// SignProof returns the proof of p, valid until p.Expires. It is signed
// with the lane key under its own issuer (wire.ProofIssuer): inner hops
// accept only lanes, and the edge's proof check only proofs.
func (s *Signer) SignProof(p Proof) string {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, proofClaims{
		Token: p.Token, Decision: wire.ProofDecision(p.Version, p.Env, p.Release), CallerHash: p.CallerHash,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: wire.ProofIssuer, ExpiresAt: jwt.NewNumericDate(p.Expires)},
	})
	// As a lane's: no typ, no kid (Envoy tries each key of the set).
	delete(t.Header, "typ")
	tok, err := t.SignedString(s.private)
	if err != nil {
		// Ed25519 signing of a JSON payload cannot fail.
		panic(fmt.Sprintf("proof: signing: %v", err))
	}
	return tok
}

// VerifyProof checks a proof at now as the edge's Envoy does: EdDSA with
// a lane key, graymesh's proof issuer, an expiry not passed by more than
// ClockSkew, and a token, environment and version named. Whether it is
// the requesting token's, and of the config in force, is the caller's to
// check.
func (s *KeySet) VerifyProof(token string, now time.Time) (Proof, error) {
	var c proofClaims
	if err := s.parse(token, wire.ProofIssuer, &c, now); err != nil {
		return Proof{}, err
	}
	version, rest, _ := strings.Cut(c.Decision, "/")
	env, release, ok := strings.Cut(rest, "/")
	if c.Token == "" || version == "" || env == "" || !ok || strings.Contains(release, "/") {
		return Proof{}, ErrMalformed
	}
	return Proof{Token: c.Token, Env: env, Release: release, Version: version, CallerHash: c.CallerHash, Expires: c.ExpiresAt.Time}, nil
}
