package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"time"
)

// DefaultJWKSRefreshInterval is the least time between two re-reads of the
// JWKS file. A re-read happens only when a token names a kid no key has;
// anyone can send such tokens, so the interval bounds the file reads a
// flood of them costs.
const DefaultJWKSRefreshInterval = 5 * time.Second

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
	if len(set.addAll(v.static)) > 0 || len(set.addAll(keys)) > 0 {
		return v.keys.Load()
	}
	v.keys.Store(set)
	return set
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// readJWKS reads public keys from a JSON Web Key Set file (RFC 7517). Keys
// meant for encryption ("use": "enc") are skipped; a key without "alg" gets
// the usual algorithm of its type.
func readJWKS(path string) ([]namedKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []namedKey
	for i, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		key, alg, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("%s: keys[%d] (kid %q): %w", path, i, k.Kid, err)
		}
		out = append(out, namedKey{kid: k.Kid, alg: alg, key: key})
	}
	return out, nil
}

func (k jwk) public() (any, string, error) {
	b64 := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 {
			return nil, "", fmt.Errorf("bad RSA n or e")
		}
		alg := or(k.Alg, "RS256")
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, alg, nil
	case "EC":
		var curve elliptic.Curve
		var alg string
		switch k.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		case "P-521":
			curve, alg = elliptic.P521(), "ES512"
		default:
			return nil, "", fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			return nil, "", fmt.Errorf("bad EC x or y")
		}
		pub := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if !curve.IsOnCurve(pub.X, pub.Y) {
			return nil, "", fmt.Errorf("EC point is not on %s", k.Crv)
		}
		return pub, or(k.Alg, alg), nil
	case "OKP":
		x, err := b64.DecodeString(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, "", fmt.Errorf("only Ed25519 OKP keys are supported")
		}
		return ed25519.PublicKey(x), "EdDSA", nil
	}
	return nil, "", fmt.Errorf("unsupported kty %q", k.Kty)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
