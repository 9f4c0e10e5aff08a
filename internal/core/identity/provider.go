package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// provider is one compiled issuer: what its tokens must say, and its keys
// (the config's and the JWKS file's in local, a fetched set in remote).
type provider struct {
	v *Verifier
	// field names the issuer in messages and key sources:
	// "identity.jwt" or "identity.jwt.issuers[1]".
	field  string
	issuer string
	// configured are the algorithms the config lists (nil: none listed);
	// algs are those tokens of this issuer may use.
	configured []string
	algs       []string
	validator  *jwt.Validator

	subjectClaim, subjectPrefix string
	claims                      map[string]string

	// static are the keys listed in the config; every local set holds
	// them. local is replaced whole when the JWKS file is re-read; a
	// verification loads it once and never sees half a rotation.
	static   []namedKey
	local    atomic.Pointer[keySet]
	jwksPath string
	// refreshMu serialises re-reads of the JWKS file; nextRefresh (Unix
	// nanoseconds on the verifier's clock) is the earliest time the next
	// one may start.
	refreshMu   sync.Mutex
	nextRefresh atomic.Int64

	remote *remote
}

func newProvider(v *Verifier, field string, cfg config.Provider, resolve func(string) string, leeway time.Duration) (*provider, error) {
	p := &provider{
		v: v, field: field, issuer: cfg.Issuer, configured: cfg.Algorithms,
		subjectClaim: cfg.SubjectClaim, subjectPrefix: cfg.SubjectPrefix, claims: cfg.Claims,
	}
	set, err := p.loadKeys(cfg, resolve)
	if err != nil {
		return nil, err
	}
	p.local.Store(set)
	p.algs = p.allowed(set, cfg.Remote())
	if cfg.Remote() {
		var remoteAlgs []string
		for _, a := range p.configured {
			if isAsymmetric(a) {
				remoteAlgs = append(remoteAlgs, a)
			}
		}
		p.remote = v.sources.source(specOf(cfg, resolve, remoteAlgs))
	}
	vopts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		vopts = append(vopts, jwt.WithIssuer(cfg.Issuer))
	}
	if auds := cfg.AllAudiences(); len(auds) > 0 {
		vopts = append(vopts, jwt.WithAudience(auds...))
	}
	p.validator = jwt.NewValidator(vopts...)
	return p, nil
}

// allowed is the algorithms listed, or else those of the keys, and every
// asymmetric one when keys are fetched (a fetched set never yields an
// HMAC key, so none is added for it).
func (p *provider) allowed(set *keySet, remote bool) []string {
	if len(p.configured) > 0 {
		return p.configured
	}
	var algs []string
	for alg := range set.byAlg {
		algs = append(algs, alg)
	}
	if remote {
		for _, a := range config.SupportedAlgorithms {
			if isAsymmetric(a) && !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		}
	}
	slices.Sort(algs)
	return algs
}

// allowsAny accepts the algorithms a JWKS file's keys may have: those
// listed, or any when none is.
func (p *provider) allowsAny(alg string) bool {
	return len(p.configured) == 0 || slices.Contains(p.configured, alg)
}

// fetched reports whether the provider has no fetched set to wait for.
func (p *provider) fetched() bool { return p.remote == nil || p.remote.current() != nil }

// keyFor returns the key for a token of this issuer: only one registered
// for the token's own algorithm, so a public RSA key is never used as an
// HMAC secret. A kid is looked up in the config's keys and the JWKS file
// (re-read when it lacks the kid), then in the fetched set; an unknown
// kid asks for a fetch and is refused at once.
func (p *provider) keyFor(alg, kid string, hasKid bool) (verificationKey, []jwt.VerificationKey, error) {
	if !slices.Contains(p.algs, alg) {
		return verificationKey{}, nil, errAlgMismatch
	}
	local := p.local.Load()
	var fetched *keySet
	if p.remote != nil {
		if cur := p.remote.current(); cur != nil {
			fetched = cur.set
		}
	}
	if hasKid {
		k, found := local.byKid[kid]
		if !found && fetched != nil {
			k, found = fetched.byKid[kid]
		}
		if !found && p.jwksPath != "" {
			k, found = p.refreshJWKS().byKid[kid]
		}
		switch {
		case found && k.alg != alg:
			return verificationKey{}, nil, errAlgMismatch
		case found:
			return k, nil, nil
		case p.remote != nil:
			p.remote.kick(true)
			if fetched == nil {
				return verificationKey{}, nil, errNotFetched
			}
		}
		return verificationKey{}, nil, errUnknownKid
	}
	keys := local.byAlg[alg]
	if fetched != nil {
		keys = append(slices.Clip(keys), fetched.byAlg[alg]...)
	}
	switch len(keys) {
	case 0:
		if !p.fetched() {
			return verificationKey{}, nil, errNotFetched
		}
		return verificationKey{}, nil, errAlgMismatch
	case 1:
		return keys[0], nil, nil
	}
	all := make([]jwt.VerificationKey, len(keys))
	for i, k := range keys {
		all[i] = k.key
	}
	return verificationKey{alg: alg, source: fmt.Sprintf("one of %d %s keys", len(keys), alg)}, all, nil
}

// identity reads the verified claims: the subject (prefixed) and the
// claims rules match on, with the configured mapping applied.
func (p *provider) identity(claims jwt.MapClaims, used verificationKey) (*Identity, error) {
	var subject string
	switch s := claims[p.subjectClaim].(type) {
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
	flat := flatten(claims)
	for name, path := range p.claims {
		if vals := values(lookup(claims, path)); vals != nil {
			flat[name] = vals
		} else {
			delete(flat, name)
		}
	}
	return &Identity{
		Subject: p.subjectPrefix + subject, Claims: flat, Expiry: exp.Time,
		Issuer: p.issuer, KeyID: used.kid, Algorithm: used.alg, KeySource: used.source,
	}, nil
}

// lookup finds a claim by its name, or else by a dotted path into nested
// objects ("realm_access.roles").
func lookup(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = obj[part]; !ok {
			return nil
		}
	}
	return cur
}

// errNotFetched: the issuer publishes its keys over HTTP(S) and no set
// has arrived yet.
var errNotFetched = errors.New("the issuer's key set has not been fetched yet")
