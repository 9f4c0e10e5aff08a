package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Why a token was refused: the error kinds Verify returns and the short,
// stable reason each maps to for logs, metrics and explain output.

var (
	errOversized      = fmt.Errorf("token larger than %d KiB", MaxTokenBytes>>10)
	errNoSubject      = errors.New("token has no subject claim")
	errSubjectType    = fmt.Errorf("token subject claim is not a string: %w", jwt.ErrInvalidType)
	errUnknownKid     = errors.New("token names an unknown kid")
	errKidType        = fmt.Errorf("token header kid is not a string: %w", jwt.ErrTokenMalformed)
	errAlgMismatch    = errors.New("no key for the token's algorithm")
	errCritical       = errors.New("token header has crit: graymesh supports no critical extension")
	errDuplicateClaim = errors.New("token payload repeats a claim")
	errPayload        = fmt.Errorf("token payload is not a JSON object: %w", jwt.ErrTokenMalformed)
	errUnknownIssuer  = fmt.Errorf("token iss names no configured issuer: %w", jwt.ErrTokenInvalidIssuer)
)

// Problem turns a verification error into a short stable reason for logs,
// metrics and explain output.
func Problem(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errOversized):
		return "oversized"
	case errors.Is(err, errNoSubject):
		return "no-subject"
	case errors.Is(err, errNotFetched):
		// The issuer's key set has not arrived yet (provider unreachable
		// since startup): readiness says so too.
		return "keys-unavailable"
	case errors.Is(err, errUnknownKid):
		return "unknown-kid"
	case errors.Is(err, errUnknownIssuer):
		return "issuer"
	case errors.Is(err, errDuplicateClaim):
		return "duplicate-claim"
	case errors.Is(err, errCritical):
		return "critical-header"
	case errors.Is(err, jwt.ErrInvalidType):
		// A registered claim of the wrong type: "exp": "9999999999",
		// "sub": 42, "aud": 7.
		return "claim-type"
	case errors.Is(err, errAlgMismatch), errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "algorithm"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing-claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not-yet-valid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience"
	default:
		return "invalid"
	}
}
