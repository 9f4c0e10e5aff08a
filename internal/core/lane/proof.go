package lane

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Proof is a verified returning caller's proof: the edge's decision for
// Caller under config Version, which the edge's Envoy routes on without
// asking graymesh (mesh.native_returning_callers).
type Proof struct {
	Caller, Env, Release, Version string
	// CallerHash is the keyed caller hash the access log carries to the
	// analysis.
	CallerHash string
	Expires    time.Time
}

// proofClaims are a proof's JWT claims; wire names each.
type proofClaims struct {
	Env        string `json:"env"`
	Release    string `json:"rel,omitempty"`
	Version    string `json:"ver"`
	CallerHash string `json:"ch,omitempty"`
	jwt.RegisteredClaims
}

// SignProof returns the proof of p, valid from now for ttl. It is signed
// with the lane key under its own issuer (wire.ProofIssuer): inner hops
// accept only lanes, and the edge's proof check only proofs.
func (s *Signer) SignProof(p Proof, now time.Time, ttl time.Duration) string {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, proofClaims{
		Env: p.Env, Release: p.Release, Version: p.Version, CallerHash: p.CallerHash,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: wire.ProofIssuer, Subject: p.Caller, ExpiresAt: jwt.NewNumericDate(now.Add(ttl))},
	})
	t.Header["kid"] = s.kid
	tok, err := t.SignedString(s.private)
	if err != nil {
		// Ed25519 signing of a JSON payload cannot fail.
		panic(fmt.Sprintf("proof: signing: %v", err))
	}
	return tok
}

// VerifyProof checks a proof at now as the edge's Envoy does: EdDSA with
// a lane key, graymesh's proof issuer, an expiry not passed by more than
// ClockSkew, and a caller, environment and version named. Whether it is
// the requesting caller's, and of the config in force, is the caller's to
// check.
func (s *KeySet) VerifyProof(token string, now time.Time) (Proof, error) {
	var c proofClaims
	if err := s.parse(token, wire.ProofIssuer, &c, now); err != nil {
		return Proof{}, err
	}
	if c.Subject == "" || c.Env == "" || c.Version == "" {
		return Proof{}, ErrMalformed
	}
	return Proof{Caller: c.Subject, Env: c.Env, Release: c.Release, Version: c.Version, CallerHash: c.CallerHash, Expires: c.ExpiresAt.Time}, nil
}
