package lane

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// MaxStressTTL bounds how long a stress marker lives: a load test is
// minutes to hours long, and a leaked marker must not load gray for days.
const MaxStressTTL = 24 * time.Hour

// Stress is a verified stress marker: requests carrying it are routed to
// Release's environment as if the release were fully ramped.
type Stress struct {
	Release string
	Expires time.Time
}

// stressClaims are a stress marker's JWT claims.
type stressClaims struct {
	Release string `json:"rel"`
	jwt.RegisteredClaims
}

// ErrStressTTL is the error of a marker asked for with a lifetime out of
// bounds.
var ErrStressTTL = errors.New("stress marker ttl must be positive and at most 24h")

// SignStress mints a stress marker for release, valid from now for ttl.
// It is signed with the lane key but under its own issuer
// (wire.StressIssuer): an inner hop's Envoy accepts only lanes, and
// VerifyStress only markers.
func (s *Signer) SignStress(release string, now time.Time, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxStressTTL {
		return "", ErrStressTTL
	}
	if release == "" {
		return "", errors.New("stress marker: no release")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, stressClaims{Release: release, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: wire.StressIssuer, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}})
	t.Header["kid"] = s.kid
	tok, err := t.SignedString(s.private)
	if err != nil {
		return "", fmt.Errorf("stress marker: signing: %w", err)
	}
	return tok, nil
}

// VerifyStress checks a stress marker at now: EdDSA with a lane key
// (signing or verify keys, so markers survive a key rotation as lanes
// do), graymesh's stress issuer, an expiry not passed and a lifetime
// within MaxStressTTL. The errors are those of Verify.
func (s *Signer) VerifyStress(token string, now time.Time) (Stress, error) {
	var c stressClaims
	if err := s.parse(token, wire.StressIssuer, &c, now, jwt.WithIssuedAt()); err != nil {
		return Stress{}, err
	}
	if c.Release == "" || c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxStressTTL {
		return Stress{}, ErrMalformed
	}
	return Stress{Release: c.Release, Expires: c.ExpiresAt.Time}, nil
}
