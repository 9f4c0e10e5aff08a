package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// JSON Web Key Sets, from a file or fetched (remote.go): one parser and one
// acceptance rule for both. Key material is decoded and validated by
// jwkset; which keys may verify tokens is decided here.

// DefaultJWKSRefreshInterval is the least time between two re-reads of the
// JWKS file. A re-read happens only when a token names a kid no key has;
// anyone can send such tokens, so the interval bounds the file reads a
// flood of them costs.
const DefaultJWKSRefreshInterval = 5 * time.Second

// minRSABits is the shortest RSA modulus a key set may provide.
const minRSABits = 2048

// skippedKey is a key of a set that verifies nothing, and why. Broken keys
// (material that does not decode, a type graymesh does not know) refuse a
// JWKS file; keys that are simply not for us (encryption keys, symmetric
// keys, algorithms not configured) are ignored in files and fetched sets
// alike.
type skippedKey struct {
	kid, why string
	broken   bool
}

func (s skippedKey) String() string { return fmt.Sprintf("kid %q: %s", s.kid, s.why) }

// parseJWKS reads the signature keys of a JSON Web Key Set (RFC 7517) for
// the algorithms allow accepts. A key never verifies when it is meant for
// encryption ("use" other than "sig", "key_ops" without "verify"), is
// symmetric ("kty": "oct": a published key set is public, so an HMAC key
// from it would let anyone sign), names "alg": "none" or an algorithm
// allow refuses, or names an algorithm that does not fit its type. A key
// without "alg" gets the usual algorithm of its type (RS256, ES256/384/512
// by curve, EdDSA). The error is for a document that is not a key set.
func parseJWKS(data []byte, allow func(alg string) bool) ([]namedKey, []skippedKey, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JSON key set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`not a JSON key set: no "keys" array`)
	}
	var (
		keys    []namedKey
		skipped []skippedKey
	)
	for i, raw := range *doc.Keys {
		k, skip := parseJWK(raw, allow)
		if skip != nil {
			if skip.kid == "" {
				skip.kid = fmt.Sprintf("keys[%d]", i)
			}
			skipped = append(skipped, *skip)
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func parseJWK(raw json.RawMessage, allow func(alg string) bool) (namedKey, *skippedKey) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return namedKey{}, &skippedKey{why: "not a JSON Web Key: " + err.Error(), broken: true}
	}
	skip := func(broken bool, format string, args ...any) (namedKey, *skippedKey) {
		return namedKey{}, &skippedKey{kid: m.KID, why: fmt.Sprintf(format, args...), broken: broken}
	}
	switch {
	case m.USE != "" && m.USE != jwkset.UseSig:
		return skip(false, "use %q: not a signature key", m.USE)
	case len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify):
		return skip(false, "key_ops %v lack verify", m.KEYOPS)
	case m.KTY == jwkset.KtyOct:
		return skip(false, "symmetric (oct) key: a key set is public, so its HMAC keys are never used")
	}
	alg := string(m.ALG)
	if alg == "" {
		alg = defaultAlg(m)
	}
	if alg == "" {
		return skip(true, "kty %q (crv %q) is not a signature key type graymesh knows", m.KTY, m.CRV)
	}
	if !isAsymmetric(alg) {
		return skip(false, "alg %q is not an asymmetric signature algorithm graymesh verifies", alg)
	}
	if !allow(alg) {
		return skip(false, "alg %s is not configured", alg)
	}
	// Public material only: a key set that carries private parameters has
	// them ignored.
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return skip(true, "%v", err)
	}
	key := jwk.Key()
	if err := fits(alg, key); err != nil {
		return skip(true, "%v", err)
	}
	return namedKey{kid: m.KID, alg: alg, key: key}, nil
}

// defaultAlg is the algorithm a key without "alg" is used with.
func defaultAlg(m jwkset.JWKMarshal) string {
	switch {
	case m.KTY == jwkset.KtyRSA:
		return "RS256"
	case m.KTY == jwkset.KtyEC && m.CRV == jwkset.CrvP256:
		return "ES256"
	case m.KTY == jwkset.KtyEC && m.CRV == jwkset.CrvP384:
		return "ES384"
	case m.KTY == jwkset.KtyEC && m.CRV == jwkset.CrvP521:
		return "ES512"
	case m.KTY == jwkset.KtyOKP && m.CRV == jwkset.CrvEd25519:
		return "EdDSA"
	}
	return ""
}

// fits checks that key is a public key of the kind alg verifies with.
func fits(alg string, key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return fmt.Errorf("alg %s on an RSA key", alg)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits; at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		want := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[k.Curve.Params().Name]
		if alg != want {
			return fmt.Errorf("alg %s on an EC %s key", alg, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("alg %s on an Ed25519 key", alg)
		}
	default:
		return fmt.Errorf("a %T is not a signature key", key)
	}
	return nil
}

func isAsymmetric(alg string) bool {
	return alg != "" && !strings.HasPrefix(alg, "HS") && slices.Contains(config.SupportedAlgorithms, alg)
}

// readJWKS reads a JWKS file. Unlike a fetched set, a file with a broken
// key is refused whole: the file is ours, and a typo should fail loudly.
func readJWKS(path string, allow func(alg string) bool) ([]namedKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, skipped, err := parseJWKS(data, allow)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, s := range skipped {
		if s.broken {
			errs = append(errs, fmt.Errorf("%s: %s", path, s))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// refreshJWKS re-reads the provider's JWKS file after a token named a kid
// no key has, so a key added to the file is used without a restart. It
// re-reads at most once per refresh interval however many such tokens
// arrive; callers that wait while another re-reads get the set it
// produced. A file that no longer reads or holds a conflicting kid leaves
// the keys in use unchanged. It returns the local key set in force
// afterwards.
func (p *provider) refreshJWKS() *keySet {
	if p.jwksPath == "" {
		return p.local.Load()
	}
	v := p.v
	now := v.now().UnixNano()
	if now < p.nextRefresh.Load() {
		return p.local.Load()
	}
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if now < p.nextRefresh.Load() {
		return p.local.Load()
	}
	// Set after the read, so callers that arrive meanwhile wait for its
	// keys instead of failing on the old ones.
	defer p.nextRefresh.Store(now + int64(v.refreshEvery))
	v.jwksReads.Add(1)
	keys, err := readJWKS(p.jwksPath, p.allowsAny)
	if err != nil {
		return p.local.Load()
	}
	set := newKeySet()
	if len(set.addAll(p.static)) > 0 || len(set.addAll(withSource(keys, p.field+".jwks_file"))) > 0 {
		return p.local.Load()
	}
	p.local.Store(set)
	return set
}

func withSource(keys []namedKey, source string) []namedKey {
	out := make([]namedKey, len(keys))
	for i, k := range keys {
		k.source = source
		out[i] = k
	}
	return out
}
