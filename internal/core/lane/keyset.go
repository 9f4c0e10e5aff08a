package lane

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KeySet verifies lanes with public keys only: what a sidecar's Envoy
// holds, and what a service that checks lanes itself (a message
// consumer) is given as the JSON Web Key Set graymesh publishes. The
// zero KeySet verifies nothing.
type KeySet struct {
	public map[string]ed25519.PublicKey
	kids   []string
}

// maxKeys bounds a parsed key set: graymesh publishes the signing key and
// the verify keys of a rotation.
const maxKeys = 16

// ParseKeySet reads a JSON Web Key Set of Ed25519 keys (RFC 8037 "OKP"),
// as Signer.JWKS writes it. Keys of any other type are refused, not
// skipped: a set graymesh published has none.
func ParseKeySet(jwks []byte) (*KeySet, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil {
		return nil, fmt.Errorf("lane key set: %w", err)
	}
	if len(doc.Keys) == 0 || len(doc.Keys) > maxKeys {
		return nil, fmt.Errorf("lane key set: %d keys, want 1 to %d", len(doc.Keys), maxKeys)
	}
	ks := &KeySet{public: map[string]ed25519.PublicKey{}}
	for i, k := range doc.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Alg != "" && k.Alg != "EdDSA") {
			return nil, fmt.Errorf("lane key set: key %d is %s/%s/%s, want OKP/Ed25519/EdDSA", i, k.Kty, k.Crv, k.Alg)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("lane key set: key %d: x is not a base64url Ed25519 public key", i)
		}
		kid := k.Kid
		if kid == "" {
			return nil, errors.New("lane key set: a key without kid")
		}
		ks.add(kid, ed25519.PublicKey(x))
	}
	return ks, nil
}

func (s *KeySet) add(kid string, public ed25519.PublicKey) {
	if _, dup := s.public[kid]; !dup {
		s.public[kid] = public
		s.kids = append(s.kids, kid)
	}
}

// KillStops reports whether a kill stops a lane issued under laneVersion:
// every lane of the killed release without a bound (killedThrough nil);
// with one (fleet versions), the lanes issued at or before it — a newer
// lane comes from an edge where the kill was already lifted. A version
// that is no integer is stopped.
func KillStops(killedThrough *int64, laneVersion string) bool {
	if killedThrough == nil {
		return true
	}
	v, err := strconv.ParseInt(strings.TrimSpace(laneVersion), 10, 64)
	return err != nil || v <= *killedThrough
}

// KeyIDs are the set's key ids, in order.
func (s *KeySet) KeyIDs() []string { return append([]string(nil), s.kids...) }
