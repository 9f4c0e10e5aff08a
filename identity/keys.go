package identity

import (
	"fmt"
	"os"
	"strings"

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
