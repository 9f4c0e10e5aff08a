package identity

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/config"
)

// The verifier: New compiles the identity config into a Verifier once;
// Verify checks one token against it. Key material lives in keys.go and
// jwks.go, the duplicate-claim scan in claims_json.go, the cache in
// cache.go.

// MaxTokenBytes bounds the token size verified; larger tokens are refused
// before any parsing.
const MaxTokenBytes = 8 << 10

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	// keys is replaced whole when the JWKS file is re-read; a verification
	// loads it once and never sees half a rotation.
	keys         atomic.Pointer[keySet]
	subjectClaim string
	cookie       string
	deviceCookie string
	cache        *tokenCache
	now          func() time.Time

	// static are the keys listed in the config; every key set holds them.
	static []namedKey
	// jwksPath is the resolved jwks_file ("" when none is configured).
	jwksPath     string
	refreshEvery time.Duration
	// refreshMu serialises re-reads; nextRefresh (Unix nanoseconds on the
	// verifier's clock) is the earliest time the next one may start.
	refreshMu   sync.Mutex
	nextRefresh atomic.Int64
	// jwksReads counts re-reads of the JWKS file after New.
	jwksReads atomic.Int64
}

// Option adjusts a Verifier.
type Option func(*Verifier)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithJWKSRefreshInterval sets the least time between two re-reads of the
// JWKS file (DefaultJWKSRefreshInterval when not given; 0 re-reads on every
// unknown kid, for tests only).
func WithJWKSRefreshInterval(d time.Duration) Option {
	return func(v *Verifier) { v.refreshEvery = d }
}

// New compiles the identity section of a validated config; resolve turns a
// key path from the config into a file path.
func New(cfg config.Identity, resolve func(string) string, opts ...Option) (*Verifier, error) {
	v := &Verifier{
		subjectClaim: cfg.JWT.SubjectClaim,
		cookie:       cfg.JWT.Cookie,
		deviceCookie: cfg.DeviceCookie,
		now:          time.Now,
		refreshEvery: DefaultJWKSRefreshInterval,
	}
	for _, o := range opts {
		o(v)
	}
	set, err := v.loadKeys(cfg.JWT, resolve)
	if err != nil {
		return nil, err
	}
	v.keys.Store(set)
	algs := cfg.JWT.Algorithms
	if len(algs) == 0 {
		for alg := range set.byAlg {
			algs = append(algs, alg)
		}
	}
	popts := []jwt.ParserOption{
		// Explicit algorithms stop alg:none and HS/RS confusion before any
		// key is consulted.
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.JWT.Leeway.Duration),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.JWT.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(cfg.JWT.Issuer))
	}
	if cfg.JWT.Audience != "" {
		popts = append(popts, jwt.WithAudience(cfg.JWT.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	if cfg.JWT.CacheSize > 0 {
		v.cache = newTokenCache(cfg.JWT.CacheSize)
	}
	return v, nil
}

// HasKeys reports whether any token can verify at all.
func (v *Verifier) HasKeys() bool { return len(v.keys.Load().byAlg) > 0 }

// Verify checks token and returns its identity.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if len(token) > MaxTokenBytes {
		return nil, errOversized
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if id, ok := v.cache.get(sum, v.now()); ok {
			return id, nil
		}
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyFor); err != nil {
		return nil, err
	}
	if err := v.uniqueClaims(token); err != nil {
		return nil, err
	}
	var subject string
	switch s := claims[v.subjectClaim].(type) {
	case nil:
	case string:
		subject = s
	default:
		return nil, errSubjectType
	}
	if subject == "" {
		return nil, errNoSubject
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, jwt.ErrTokenRequiredClaimMissing
	}
	id := &Identity{Subject: subject, Claims: flatten(claims), Expiry: exp.Time}
	if v.cache != nil {
		v.cache.put(sum, id)
	}
	return id, nil
}

// keyFor returns only keys registered for the token's own algorithm, so a
// public RSA key is never used as an HMAC secret. Header parameters that
// point at keys elsewhere (jku, x5u, jwk, x5c) are never read: only keys
// from the config and the JWKS file verify.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: a recipient must refuse a token whose crit
		// names extensions it does not understand; graymesh understands
		// none.
		return nil, errCritical
	}
	alg := t.Method.Alg()
	keys := v.keys.Load()
	if raw, ok := t.Header["kid"]; ok {
		kid, isString := raw.(string)
		if !isString {
			return nil, errKidType
		}
		if kid != "" {
			k, found := keys.byKid[kid]
			if !found {
				k, found = v.refreshJWKS().byKid[kid]
			}
			if !found {
				return nil, errUnknownKid
			}
			if k.alg != alg {
				return nil, errAlgMismatch
			}
			return k.key, nil
		}
	}
	algKeys := keys.byAlg[alg]
	switch len(algKeys) {
	case 0:
		return nil, errAlgMismatch
	case 1:
		return algKeys[0], nil
	}
	set := jwt.VerificationKeySet{}
	for _, k := range algKeys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// flatten turns claims into string lists for matchers: strings as is,
// numbers in their shortest form, booleans as true/false, arrays element
// by element. Objects are skipped.
func flatten(claims jwt.MapClaims) map[string][]string {
	out := make(map[string][]string, len(claims))
	for k, v := range claims {
		var vals []string
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if s, ok := scalar(e); ok {
					vals = append(vals, s)
				}
			}
		default:
			if s, ok := scalar(x); ok {
				vals = []string{s}
			}
		}
		if vals != nil {
			out[k] = vals
		}
	}
	return out
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
