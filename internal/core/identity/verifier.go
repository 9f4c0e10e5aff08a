package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
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
	// parser checks the signature with the union of every issuer's
	// algorithms; each issuer's validator then checks its claims.
	parser    *jwt.Parser
	providers []*provider
	// byIssuer finds the provider of a token's iss when there are several.
	byIssuer     map[string]*provider
	cookie       string
	deviceCookie string
	cache        *tokenCache
	now          func() time.Time
	refreshEvery time.Duration
	// jwksReads counts re-reads of JWKS files after New.
	jwksReads atomic.Int64

	sources *Sources
	// closeOwn stops the Sources New made for itself (none was given).
	closeOwn context.CancelFunc
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

// WithSources fetches key sets through s, shared with the other Verifiers
// built with it; s fetches once started. Without it, New starts a Sources
// of its own when an issuer fetches its keys, stopped by Close.
func WithSources(s *Sources) Option { return func(v *Verifier) { v.sources = s } }

// New compiles the identity section of a validated config; resolve turns a
// key path from the config into a file path. It reads key files but makes
// no network request: fetched key sets arrive in the background.
func New(cfg config.Identity, resolve func(string) string, opts ...Option) (*Verifier, error) {
	v := &Verifier{
		cookie:       cfg.JWT.Cookie,
		deviceCookie: cfg.DeviceCookie,
		now:          time.Now,
		refreshEvery: DefaultJWKSRefreshInterval,
	}
	for _, o := range opts {
		o(v)
	}
	providers := cfg.JWT.Providers()
	if v.sources == nil && slices.ContainsFunc(providers, func(p config.Provider) bool { return p.Remote() }) {
		ctx, cancel := context.WithCancel(context.Background())
		v.sources, v.closeOwn = NewSources(nil), cancel
		v.sources.Start(ctx)
	}
	var errs []error
	var algs []string
	for i, pc := range providers {
		p, err := newProvider(v, cfg.JWT.ProviderField(i), pc, resolve, cfg.JWT.Leeway.Duration)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v.providers = append(v.providers, p)
		for _, a := range p.algs {
			if !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		v.Close()
		return nil, err
	}
	if len(v.providers) > 1 {
		v.byIssuer = make(map[string]*provider, len(v.providers))
		for _, p := range v.providers {
			v.byIssuer[p.issuer] = p
		}
	}
	// Explicit algorithms stop alg:none and HS/RS confusion before any key
	// is consulted; claims are checked per issuer after the signature.
	v.parser = jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithoutClaimsValidation())
	if cfg.JWT.CacheSize > 0 {
		v.cache = newTokenCache(cfg.JWT.CacheSize)
	}
	return v, nil
}

// Close stops fetching key sets when New started its own Sources; with
// WithSources the registry's owner stops them.
func (v *Verifier) Close() {
	if v.closeOwn != nil {
		v.closeOwn()
	}
}

// HasKeys reports whether any token can verify at all.
func (v *Verifier) HasKeys() bool {
	for _, p := range v.providers {
		if len(p.local.Load().byAlg) > 0 || p.remote != nil {
			return true
		}
	}
	return false
}

// Pending names the fetched key sets that have not arrived yet: until one
// has, every token of its issuer is anonymous (reason keys-unavailable).
func (v *Verifier) Pending() []string {
	var out []string
	for _, p := range v.providers {
		if !p.fetched() {
			st := p.remote.status()
			msg := fmt.Sprintf("%s: no key set from %s yet", p.field, st.Source)
			if st.LastError != "" {
				msg += " (last error: " + st.LastError + ")"
			}
			out = append(out, msg)
		}
	}
	return out
}

// WaitFetched waits until every fetched key set has arrived once, or ctx
// ends; for offline tools (graymesh explain), never the request path.
func (v *Verifier) WaitFetched(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		pending := v.Pending()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ctx.Err(), strings.Join(pending, "; "))
		case <-t.C:
		}
	}
}

// Verify checks token and returns its identity.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if len(token) > MaxTokenBytes {
		return nil, errOversized
	}
	if v.cache != nil {
		if id, ok := v.cache.get(token, v.now()); ok {
			return id, nil
		}
	}
	claims := jwt.MapClaims{}
	var (
		p    *provider
		used verificationKey
	)
	keyFunc := func(t *jwt.Token) (any, error) {
		var (
			all []jwt.VerificationKey
			err error
		)
		if p, err = v.providerFor(t); err != nil {
			return nil, err
		}
		if used, all, err = v.keyFor(p, t); err != nil {
			return nil, err
		}
		if all != nil {
			return jwt.VerificationKeySet{Keys: all}, nil
		}
		return used.key, nil
	}
	if _, err := v.parser.ParseWithClaims(token, claims, keyFunc); err != nil {
		return nil, err
	}
	if err := p.validator.Validate(claims); err != nil {
		return nil, err
	}
	if err := v.uniqueClaims(token); err != nil {
		return nil, err
	}
	id, err := p.identity(claims, used)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(token, id)
	}
	return id, nil
}

// providerFor picks the issuer a token claims to come from: the only one,
// or the one its iss names. The claim is read before the signature is
// checked, only to choose keys; the issuer's validator checks it again.
func (v *Verifier) providerFor(t *jwt.Token) (*provider, error) {
	if v.byIssuer == nil {
		return v.providers[0], nil
	}
	mc, _ := t.Claims.(jwt.MapClaims)
	switch iss := mc["iss"].(type) {
	case string:
		if p, ok := v.byIssuer[iss]; ok {
			return p, nil
		}
	case nil:
	default:
		return nil, fmt.Errorf("%w: iss", jwt.ErrInvalidType)
	}
	return nil, errUnknownIssuer
}

// keyFor applies the header rules every issuer shares, then asks the
// issuer for the key. Header parameters that point at keys elsewhere (jku,
// x5u, jwk, x5c) are never read: only keys from the config, the JWKS file
// and the issuer's configured key set verify.
func (v *Verifier) keyFor(p *provider, t *jwt.Token) (verificationKey, []jwt.VerificationKey, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: a recipient must refuse a token whose crit
		// names extensions it does not understand; graymesh understands
		// none.
		return verificationKey{}, nil, errCritical
	}
	kid, hasKid := "", false
	if raw, ok := t.Header["kid"]; ok {
		s, isString := raw.(string)
		if !isString {
			return verificationKey{}, nil, errKidType
		}
		kid, hasKid = s, s != ""
	}
	return p.keyFor(t.Method.Alg(), kid, hasKid)
}

// flatten turns claims into string lists for matchers: strings as is,
// numbers in their shortest form, booleans as true/false, arrays element
// by element. Objects are skipped.
func flatten(claims jwt.MapClaims) map[string][]string {
	out := make(map[string][]string, len(claims))
	for k, v := range claims {
		if vals := values(v); vals != nil {
			out[k] = vals
		}
	}
	return out
}

// values flattens one claim value (nil for an object or nothing usable).
func values(v any) []string {
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
	return vals
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
