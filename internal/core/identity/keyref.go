package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// KeyRef names one verification key the way a token reaches it: by kid
// (empty for a key without one) and algorithm, and by what verifies the
// signature, so that two configs can be compared for the tokens they
// accept.
type KeyRef struct {
	Kid, Alg string
	// Fingerprint is the hex SHA-256 of the HMAC secret or of the DER
	// (PKIX) public key: a key file moved or re-encoded keeps it.
	Fingerprint string
	// Unread is the absolute path of a key or JWKS file that could not be
	// read or parsed; then Fingerprint, and for a JWKS file Kid and Alg,
	// are empty.
	Unread string
	// Field is where the key is configured: "identity.jwt.keys",
	// "identity.jwt.jwks_file", "identity.jwt.issuers[1].keys"….
	Field string
}

// Name is how messages name the key: `key "k1" (HS256)`, or
// `key without kid (HS256)`.
func (k KeyRef) Name() string {
	if k.Kid == "" {
		return fmt.Sprintf("key without kid (%s)", k.Alg)
	}
	return fmt.Sprintf("key %q (%s)", k.Kid, k.Alg)
}

// ConfiguredKeys lists the keys from files and the config that a
// provider built from cfg would hold now: those of keys in order, then
// those of jwks_file; field names the provider ("identity.jwt" or
// "identity.jwt.issuers[1]"). Keys fetched over HTTP(S) are not listed:
// they are only known at runtime. resolve turns a path from the config
// into a file path, as for New. A file that cannot be read (or parsed) is
// listed with Unread set instead of failing: callers compare configs, and
// New reports the error when one is compiled.
func ConfiguredKeys(cfg config.Provider, field string, resolve func(string) string) []KeyRef {
	var out []KeyRef
	for _, k := range cfg.Keys {
		ref := KeyRef{Kid: k.ID, Alg: k.Algorithm, Field: field + ".keys"}
		if key, err := loadKey(k, resolve); err == nil {
			ref.Fingerprint = fingerprint(key)
		} else {
			file := k.SecretFile
			if file == "" {
				file = k.PublicKeyFile
			}
			ref.Unread = absPath(resolve(file))
		}
		out = append(out, ref)
	}
	if cfg.JWKSFile == "" {
		return out
	}
	path := resolve(cfg.JWKSFile)
	// Every key of the file, allowed or not: a key whose algorithm the
	// new config stops allowing is reported as an algorithm change.
	keys, err := readJWKS(path, func(string) bool { return true })
	if err != nil {
		return append(out, KeyRef{Unread: absPath(path), Field: field + ".jwks_file"})
	}
	for _, k := range keys {
		out = append(out, KeyRef{Kid: k.kid, Alg: k.alg, Fingerprint: fingerprint(k.key), Field: field + ".jwks_file"})
	}
	return out
}

// fingerprint hashes an HMAC secret ([]byte) or a public key.
func fingerprint(key any) string {
	b, ok := key.([]byte)
	if !ok {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			return ""
		}
		b = der
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
