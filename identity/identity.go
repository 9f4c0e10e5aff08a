// Package identity reads who is calling from a request's Authorization
// header or cookies. Only a token that verifies against a configured key,
// with an allowed algorithm and an unexpired exp, yields a subject; anything
// else leaves the caller anonymous with the reason recorded.
package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/config"
)

// MaxTokenBytes bounds the token size verified; larger tokens are refused
// before any parsing.
const MaxTokenBytes = 8 << 10

// DefaultJWKSRefreshInterval is the least time between two re-reads of the
// JWKS file. A re-read happens only when a token names a kid no key has;
// anyone can send such tokens, so the interval bounds the file reads a
// flood of them costs.
const DefaultJWKSRefreshInterval = 5 * time.Second

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

// keySet is an immutable set of verification keys.
type keySet struct {
	byAlg map[string][]any
	byKid map[string]verificationKey
}

type verificationKey struct {
	alg string
	key any
}

// namedKey is a key with the kid and algorithm it is registered for.
type namedKey struct {
	kid, alg string
	key      any
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
	set := newKeySet()
	var errs []error
	for i, k := range cfg.JWT.Keys {
		key, err := loadKey(k, resolve)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.keys[%d]: %w", i, err))
			continue
		}
		if err := set.add(k.ID, k.Algorithm, key); err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.keys[%d]: %w", i, err))
			continue
		}
		v.static = append(v.static, namedKey{kid: k.ID, alg: k.Algorithm, key: key})
	}
	if cfg.JWT.JWKSFile != "" {
		v.jwksPath = resolve(cfg.JWT.JWKSFile)
		keys, err := readJWKS(v.jwksPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
		}
		for _, k := range keys {
			if err := set.add(k.kid, k.alg, k.key); err != nil {
				errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
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

func newKeySet() *keySet {
	return &keySet{byAlg: map[string][]any{}, byKid: map[string]verificationKey{}}
}

// add registers key; it is only called on a set no verification sees yet.
func (s *keySet) add(kid, alg string, key any) error {
	if kid != "" {
		if _, dup := s.byKid[kid]; dup {
			return fmt.Errorf("kid %q is defined twice", kid)
		}
		s.byKid[kid] = verificationKey{alg: alg, key: key}
	}
	s.byAlg[alg] = append(s.byAlg[alg], key)
	return nil
}

// HasKeys reports whether any token can verify at all.
func (v *Verifier) HasKeys() bool { return len(v.keys.Load().byAlg) > 0 }

// refreshJWKS re-reads the JWKS file after a token named a kid no key has,
// so a key added to the file is used without a restart. It re-reads at
// most once per refresh interval however many such tokens arrive; callers
// that wait while another re-reads get the set it produced. A file that no
// longer reads or holds a conflicting kid leaves the keys in use unchanged.
// It returns the key set in force afterwards.
func (v *Verifier) refreshJWKS() *keySet {
	if v.jwksPath == "" {
		return v.keys.Load()
	}
	now := v.now().UnixNano()
	if now < v.nextRefresh.Load() {
		return v.keys.Load()
	}
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if now < v.nextRefresh.Load() {
		return v.keys.Load()
	}
	// Set after the read, so callers that arrive meanwhile wait for its
	// keys instead of failing on the old ones.
	defer v.nextRefresh.Store(now + int64(v.refreshEvery))
	v.jwksReads.Add(1)
	keys, err := readJWKS(v.jwksPath)
	if err != nil {
		return v.keys.Load()
	}
	set := newKeySet()
	for _, list := range [][]namedKey{v.static, keys} {
		for _, k := range list {
			if set.add(k.kid, k.alg, k.key) != nil {
				return v.keys.Load()
			}
		}
	}
	v.keys.Store(set)
	return set
}

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

// uniqueClaims refuses a payload that names a top-level claim twice. The
// JSON decoder keeps the last of repeated names and other parsers keep the
// first, so {"sub":"bob","sub":"alice"} would be a different caller to
// different readers. It runs after the signature verified, on the uncached
// path only, and scans the payload once more without decoding it.
func (v *Verifier) uniqueClaims(token string) error {
	_, rest, _ := strings.Cut(token, ".")
	segment, _, _ := strings.Cut(rest, ".")
	payload, err := v.parser.DecodeSegment(segment)
	if err != nil {
		return errPayload
	}
	name, repeated, err := repeatedName(payload)
	if err != nil {
		return err
	}
	if repeated {
		return fmt.Errorf("%w: %q", errDuplicateClaim, name)
	}
	return nil
}

// repeatedName returns the first member name that the JSON object b names
// twice at its top level. Names compare as encoding/json decodes them
// (escapes resolved, invalid UTF-8 replaced). b has already been decoded
// once, so it is valid JSON; anything else is reported as malformed.
func repeatedName(b []byte) (string, bool, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false, errPayload
	}
	var small [32][]byte // names so far; a map takes over past 32
	names := small[:0]
	var many map[string]struct{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", false, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return "", false, errPayload
		}
		end, escaped := stringEnd(b, i)
		if end < 0 {
			return "", false, errPayload
		}
		name := b[i+1 : end-1]
		if escaped || !utf8.Valid(name) {
			var s string
			if json.Unmarshal(b[i:end], &s) != nil {
				return "", false, errPayload
			}
			name = []byte(s)
		}
		if many != nil {
			if _, dup := many[string(name)]; dup {
				return string(name), true, nil
			}
			many[string(name)] = struct{}{}
		} else {
			for _, n := range names {
				if bytes.Equal(n, name) {
					return string(name), true, nil
				}
			}
			if len(names) < len(small) {
				names = append(names, name)
			} else {
				many = make(map[string]struct{}, 2*len(small))
				for _, n := range names {
					many[string(n)] = struct{}{}
				}
				many[string(name)] = struct{}{}
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return "", false, errPayload
		}
		if i = valueEnd(b, i+1); i < 0 {
			return "", false, errPayload
		}
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return "", false, nil
		default:
			return "", false, errPayload
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at
// b[i] == '"' (-1 when it does not end), and whether it has an escape.
func stringEnd(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, false
}

// valueEnd returns the index just past the JSON value that starts at or
// after b[i], or -1.
func valueEnd(b []byte, i int) int {
	i = skipSpace(b, i)
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _ := stringEnd(b, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && skipSpace(b, i) == i {
		i++
	}
	return i
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

var (
	errOversized      = errors.New("token larger than 8 KiB")
	errNoSubject      = errors.New("token has no subject claim")
	errSubjectType    = fmt.Errorf("token subject claim is not a string: %w", jwt.ErrInvalidType)
	errUnknownKid     = errors.New("token names an unknown kid")
	errKidType        = fmt.Errorf("token header kid is not a string: %w", jwt.ErrTokenMalformed)
	errAlgMismatch    = errors.New("no key for the token's algorithm")
	errCritical       = errors.New("token header has crit: graymesh supports no critical extension")
	errDuplicateClaim = errors.New("token payload repeats a claim")
	errPayload        = fmt.Errorf("token payload is not a JSON object: %w", jwt.ErrTokenMalformed)
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
