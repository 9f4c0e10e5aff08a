package lane

import (
	"errors"
	"testing"
	"time"
)

// TestKeySetFromJWKS: the key set graymesh publishes verifies its lanes
// with public keys only, both keys of a rotation, and nothing signed by
// another mesh; malformed sets are refused.
func TestKeySetFromJWKS(t *testing.T) {
	old, rotated := signer(t, meshKey), signer(t, otherKey, meshKey)
	ks, err := ParseKeySet([]byte(rotated.JWKS()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.KeyIDs()) != 2 || ks.KeyIDs()[0] != rotated.KeyID() {
		t.Fatalf("key ids %v", ks.KeyIDs())
	}
	for _, s := range []*Signer{old, rotated} {
		l, err := ks.Verify(s.SignStressLane("gray", "shop-v2", "7", now), now)
		if err != nil || l.Env != "gray" || !l.Stress {
			t.Fatalf("lane of %s: %+v, %v", s.KeyID(), l, err)
		}
	}
	stranger := signer(t, "stranger-key-0123456789abcdef-0123456")
	if _, err := ks.Verify(stranger.Sign("gray", "shop-v2", "7", now), now); !errors.Is(err, ErrSignature) {
		t.Errorf("another mesh's lane: %v", err)
	}
	if _, err := ks.Verify(old.Sign("gray", "shop-v2", "7", now), now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("an expired lane: %v", err)
	}
	for name, doc := range map[string]string{
		"not json":    `{`,
		"no keys":     `{"keys":[]}`,
		"rsa":         `{"keys":[{"kty":"RSA","kid":"a","n":"x","e":"AQAB"}]}`,
		"short x":     `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"AAAA"}]}`,
		"missing kid": `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
	} {
		if _, err := ParseKeySet([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
