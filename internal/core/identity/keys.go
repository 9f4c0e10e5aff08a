package identity

import (
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Verification keys: the keys listed in the config (secrets, secret files,
// public key files) and the immutable key set a verification reads. JWKS
// keys join the same set in jwks.go.

// keySet is an immutable set of verification keys.
type keySet struct {
	byAlg map[string][]verificationKey
	byKid map[string]verificationKey
}

// verificationKey is a key with the kid and algorithm it is registered
// for and where it came from (the config field, or the URL of a fetched
// key set), which explain reports.
type verificationKey struct {
	kid, alg string
	key      any
	source   string
}

// namedKey is a key as read, before it joins a set.
type namedKey = verificationKey

func newKeySet() *keySet {
	return &keySet{byAlg: map[string][]verificationKey{}, byKid: map[string]verificationKey{}}
}

// add registers k; it is only called on a set no verification sees yet.
// A kid is unique within a set.
func (s *keySet) add(k verificationKey) error {
	if k.kid != "" {
		if _, dup := s.byKid[k.kid]; dup {
			return fmt.Errorf("kid %q is defined twice", k.kid)
		}
		s.byKid[k.kid] = k
	}
	s.byAlg[k.alg] = append(s.byAlg[k.alg], k)
	return nil
}

// addAll adds keys in order and returns every refusal.
func (s *keySet) addAll(keys []namedKey) []error {
	var errs []error
	for _, k := range keys {
		if err := s.add(k); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// loadKeys builds the provider's first local key set: the config's keys,
// then the JWKS file's. It records the config's keys and the JWKS path for
// refreshJWKS, and names the offending key or file in every error.
func (p *provider) loadKeys(cfg config.Provider, resolve func(string) string) (*keySet, error) {
	set := newKeySet()
	var errs []error
	for i, k := range cfg.Keys {
		key, err := loadKey(k, resolve)
		nk := namedKey{kid: k.ID, alg: k.Algorithm, key: key, source: fmt.Sprintf("%s.keys[%d]", p.field, i)}
		if err == nil {
			err = set.add(nk)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.keys[%d]: %w", p.field, i, err))
			continue
		}
		p.static = append(p.static, nk)
	}
	if cfg.JWKSFile != "" {
		p.jwksPath = resolve(cfg.JWKSFile)
		keys, err := readJWKS(p.jwksPath, p.allowsAny)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.jwks_file: %w", p.field, err))
		}
		for _, err := range set.addAll(withSource(keys, p.field+".jwks_file")) {
			errs = append(errs, fmt.Errorf("%s.jwks_file: %w", p.field, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

func loadKey(k config.Key, resolve func(string) string) (any, error) {
	switch {
	case k.Secret != "":
		return []byte(k.Secret), nil
	case k.SecretFile != "":
		return config.ReadSecret(resolve(k.SecretFile), "secret_file")
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
