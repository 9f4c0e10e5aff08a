// Package identity reads who is calling from a request's Authorization
// header or cookies. Only a token that verifies against a configured key,
// with an allowed algorithm and an unexpired exp, yields a subject; anything
// else leaves the caller anonymous with the reason recorded.
package identity

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/config"
)

// MaxTokenBytes bounds the token size verified; larger tokens are refused
// before any parsing.
const MaxTokenBytes = 8 << 10

// Caller is what the request says about who sent it.
type Caller struct {
	// Subject and Claims come from a verified token only.
	Subject string
	Claims  map[string][]string
	// DeviceID is the anonymous bucketing key from the device cookie.
	DeviceID string
	// Problem is why a presented token was not accepted ("" when none was
	// presented or it verified).
	Problem string
}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	parser       *jwt.Parser
	keysByAlg    map[string][]any
	keysByKid    map[string]verificationKey
	subjectClaim string
	cookie       string
	deviceCookie string
	cache        *tokenCache
	now          func() time.Time
}

type verificationKey struct {
	alg string
	key any
}

// Option adjusts a Verifier.
type Option func(*Verifier)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// New compiles the identity section of a validated config; resolve turns a
// key path from the config into a file path.
func New(cfg config.Identity, resolve func(string) string, opts ...Option) (*Verifier, error) {
	v := &Verifier{
		keysByAlg:    map[string][]any{},
		keysByKid:    map[string]verificationKey{},
		subjectClaim: cfg.JWT.SubjectClaim,
		cookie:       cfg.JWT.Cookie,
		deviceCookie: cfg.DeviceCookie,
		now:          time.Now,
	}
	for _, o := range opts {
		o(v)
	}
	var errs []error
	for i, k := range cfg.JWT.Keys {
		key, err := loadKey(k, resolve)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.keys[%d]: %w", i, err))
			continue
		}
		if err := v.add(k.ID, k.Algorithm, key); err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.keys[%d]: %w", i, err))
		}
	}
	if cfg.JWT.JWKSFile != "" {
		keys, err := readJWKS(resolve(cfg.JWT.JWKSFile))
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
		}
		for _, k := range keys {
			if err := v.add(k.kid, k.alg, k.key); err != nil {
				errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	algs := cfg.JWT.Algorithms
	if len(algs) == 0 {
		for alg := range v.keysByAlg {
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

func (v *Verifier) add(kid, alg string, key any) error {
	if kid != "" {
		if _, dup := v.keysByKid[kid]; dup {
			return fmt.Errorf("kid %q is defined twice", kid)
		}
		v.keysByKid[kid] = verificationKey{alg: alg, key: key}
	}
	v.keysByAlg[alg] = append(v.keysByAlg[alg], key)
	return nil
}

// HasKeys reports whether any token can verify at all.
func (v *Verifier) HasKeys() bool { return len(v.keysByAlg) > 0 }

// FromRequest reads the caller from the Authorization and Cookie header
// values. A token in the Authorization header wins over the token cookie.
func (v *Verifier) FromRequest(authorization, cookie string) Caller {
	var c Caller
	if v.deviceCookie != "" {
		c.DeviceID = CookieValue(cookie, v.deviceCookie)
	}
	token := bearer(authorization)
	if token == "" && v.cookie != "" {
		token = CookieValue(cookie, v.cookie)
	}
	if token == "" {
		return c
	}
	id, err := v.Verify(token)
	if err != nil {
		c.Problem = Problem(err)
		return c
	}
	c.Subject, c.Claims = id.Subject, id.Claims
	return c
}

// Identity is a verified token's content.
type Identity struct {
	Subject string
	Claims  map[string][]string
	Expiry  time.Time
}

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
	subject, _ := claims[v.subjectClaim].(string)
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
// public RSA key is never used as an HMAC secret.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if kid, ok := t.Header["kid"].(string); ok && kid != "" {
		k, found := v.keysByKid[kid]
		if !found {
			return nil, errUnknownKid
		}
		if k.alg != alg {
			return nil, errAlgMismatch
		}
		return k.key, nil
	}
	keys := v.keysByAlg[alg]
	switch len(keys) {
	case 0:
		return nil, errAlgMismatch
	case 1:
		return keys[0], nil
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

var (
	errOversized   = errors.New("token larger than 8 KiB")
	errNoSubject   = errors.New("token has no subject claim")
	errUnknownKid  = errors.New("token names an unknown kid")
	errAlgMismatch = errors.New("no key for the token's algorithm")
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
	case errors.Is(err, errUnknownKid):
		return "unknown-kid"
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

func bearer(h string) string {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// CookieValue returns the value of the named cookie in a Cookie header, or
// "" when it is absent.
func CookieValue(header, name string) string {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			return strings.Trim(val, `"`)
		}
	}
	return ""
}

func loadKey(k config.Key, resolve func(string) string) (any, error) {
	switch {
	case k.Secret != "":
		return []byte(k.Secret), nil
	case k.SecretFile != "":
		b, err := os.ReadFile(resolve(k.SecretFile))
		if err != nil {
			return nil, err
		}
		secret := []byte(strings.TrimRight(string(b), "\r\n"))
		if len(secret) < 32 {
			return nil, fmt.Errorf("secret_file: %d bytes; an HMAC secret needs at least 32", len(secret))
		}
		return secret, nil
	default:
		b, err := os.ReadFile(resolve(k.PublicKeyFile))
		if err != nil {
			return nil, err
		}
		return parsePublicKey(k.Algorithm, b)
	}
}

func parsePublicKey(alg string, pem []byte) (any, error) {
	var (
		key any
		err error
	)
	switch alg[:2] {
	case "RS", "PS":
		key, err = jwt.ParseRSAPublicKeyFromPEM(pem)
	case "ES":
		key, err = jwt.ParseECPublicKeyFromPEM(pem)
	default:
		key, err = jwt.ParseEdPublicKeyFromPEM(pem)
	}
	if err != nil {
		return nil, fmt.Errorf("public_key_file: not a %s public key: %w", alg, err)
	}
	return key, nil
}

// tokenCache remembers verified tokens by the SHA-256 of the token, never
// the token itself. It holds at most max entries and never returns an
// identity at or past its exp.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*Identity
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]*Identity, max)}
}

func (c *tokenCache) get(k [sha256.Size]byte, now time.Time) (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(id.Expiry) {
		delete(c.entries, k)
		return nil, false
	}
	return id, true
}

func (c *tokenCache) put(k [sha256.Size]byte, id *Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Evict one arbitrary entry (Go randomises map iteration): O(1),
		// bounded, and good enough for a cache whose misses cost one
		// signature check.
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = id
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
