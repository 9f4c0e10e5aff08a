package identity

import (
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/config"
)

// Verification keys: the keys listed in the config (secrets, secret files,
// public key files) and the immutable key set a verification reads. JWKS
// keys join the same set in jwks.go.

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

func newKeySet() *keySet {
	return &keySet{byAlg: map[string][]any{}, byKid: map[string]verificationKey{}}
}

// add registers key; it is only called on a set no verification sees yet.
// A kid is unique across the config's keys and the JWKS file's.
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

// addAll adds keys in order and returns every refusal.
func (s *keySet) addAll(keys []namedKey) []error {
	var errs []error
	for _, k := range keys {
		if err := s.add(k.kid, k.alg, k.key); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// loadKeys builds the first key set: the config's keys, then the JWKS
// file's. It records the config's keys and the JWKS path on v for
// refreshJWKS, and names the offending key or file in every error.
func (v *Verifier) loadKeys(cfg config.JWT, resolve func(string) string) (*keySet, error) {
	set := newKeySet()
	var errs []error
	for i, k := range cfg.Keys {
		key, err := loadKey(k, resolve)
		if err == nil {
			err = set.add(k.ID, k.Algorithm, key)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.keys[%d]: %w", i, err))
			continue
		}
		v.static = append(v.static, namedKey{kid: k.ID, alg: k.Algorithm, key: key})
	}
	if cfg.JWKSFile != "" {
		v.jwksPath = resolve(cfg.JWKSFile)
		keys, err := readJWKS(v.jwksPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
		}
		for _, err := range set.addAll(keys) {
			errs = append(errs, fmt.Errorf("identity.jwt.jwks_file: %w", err))
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
