package lane

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const (
	meshKey  = "mesh-key-0123456789abcdef-0123456789"
	otherKey = "other-key-0123456789abcdef-01234567"
)

func signer(t testing.TB, key string, verify ...string) *Signer {
	t.Helper()
	var v [][]byte
	for _, k := range verify {
		v = append(v, []byte(k))
	}
	s, err := NewSigner([]byte(key), time.Minute, v...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := signer(t, meshKey)
	tok := s.Sign("gray", "shop-v2", "7", now)
	l, err := s.Verify(tok, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l.Env != "gray" || l.Release != "shop-v2" || l.Version != "7" || !l.Expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("%+v", l)
	}
	if _, err := s.Verify(s.Sign("stable", "", "", now), now); err != nil {
		t.Fatalf("a stable lane with no release: %v", err)
	}
}

// TestOneLanePerWindow: the lanes of one environment, release and version
// are one token for a whole window (half the TTL), expiring a TTL after
// the window began, whichever graymesh signs them.
func TestOneLanePerWindow(t *testing.T) {
	s := signer(t, meshKey)
	tok := s.Sign("gray", "shop-v2", "7", now)
	for _, at := range []time.Duration{time.Second, 29 * time.Second} {
		if got := s.Sign("gray", "shop-v2", "7", now.Add(at)); got != tok {
			t.Fatalf("%s into the window: a new token", at)
		}
	}
	if signer(t, meshKey).Sign("gray", "shop-v2", "7", now.Add(10*time.Second)) != tok {
		t.Fatal("another graymesh with the same mesh key signs another token")
	}
	next := s.Sign("gray", "shop-v2", "7", now.Add(30*time.Second))
	if next == tok {
		t.Fatal("the next window reuses the token")
	}
	l, _ := s.Verify(next, now.Add(30*time.Second))
	if !l.Expires.Equal(now.Add(90 * time.Second)) {
		t.Fatalf("next window's lane expires %s", l.Expires)
	}
	for _, other := range [][3]string{{"stable", "shop-v2", "7"}, {"gray", "shop-v3", "7"}, {"gray", "shop-v2", "8"}} {
		if s.Sign(other[0], other[1], other[2], now) == tok {
			t.Fatalf("%v signs the same token", other)
		}
	}
}

// reencode returns tok with its payload replaced by edit(payload) and the
// signature kept.
func reencode(t *testing.T, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// rawSign signs claims with the lane key of mesh key but a header of our
// choosing.
func rawSign(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRefuses(t *testing.T) {
	s := signer(t, meshKey)
	tok := s.Sign("gray", "shop-v2", "7", now)
	other := signer(t, otherKey)
	forged := other.Sign("gray", "shop-v2", "7", now)
	valid := jwt.MapClaims{wire.LaneClaimEnv: "gray", "iss": wire.LaneIssuer, "exp": now.Add(time.Minute).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range valid {
			c[a] = b
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	pub := s.public[s.kid]
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired", tok, now.Add(time.Minute + ClockSkew), ErrExpired},
		// A lane names no key (Envoy tries them all): another mesh's
		// verifies with none.
		{"another mesh key", forged, now, ErrSignature},
		{"another mesh key, naming ours", rawSign(t, jwt.SigningMethodEdDSA, other.private, valid, s.kid), now, ErrSignature},
		{"a kid no key has", rawSign(t, jwt.SigningMethodEdDSA, s.private, valid, "nokey"), now, ErrUnknownKey},
		{"a kid that is no string", rawSignHeader(t, s.private, valid, map[string]any{"kid": 5}), now, ErrMalformed},
		{"env altered", reencode(t, tok, func(m map[string]any) { m[wire.LaneClaimEnv] = "canary" }), now, ErrSignature},
		{"release altered", reencode(t, tok, func(m map[string]any) { m[wire.LaneClaimRelease] = "other" }), now, ErrSignature},
		{"version altered", reencode(t, tok, func(m map[string]any) { m[wire.LaneClaimVersion] = 8 }), now, ErrSignature},
		{"expiry extended", reencode(t, tok, func(m map[string]any) { m["exp"] = 9999999999 }), now, ErrSignature},
		{"signature dropped", strings.Join(strings.Split(tok, ".")[:2], ".") + ".", now, ErrSignature},
		{"line break in the signature", tok[:len(tok)-20] + "\r\n" + tok[len(tok)-20:], now, ErrMalformed},
		{"alg none", rawSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid, s.kid), now, ErrSignature},
		{"HS256 keyed with the public key", rawSign(t, jwt.SigningMethodHS256, []byte(pub), valid, s.kid), now, ErrSignature},
		{"another issuer", rawSign(t, jwt.SigningMethodEdDSA, s.private, with("iss", "graymesh-demo"), s.kid), now, ErrMalformed},
		{"the issuer of the long lanes before", rawSign(t, jwt.SigningMethodEdDSA, s.private, with("iss", "graymesh-lane"), ""), now, ErrMalformed},
		{"the stress marker's issuer", rawSign(t, jwt.SigningMethodEdDSA, s.private, with("iss", wire.StressIssuer), ""), now, ErrMalformed},
		{"a negative version", rawSign(t, jwt.SigningMethodEdDSA, s.private, with(wire.LaneClaimVersion, -3), ""), now, ErrMalformed},
		{"a fractional version", rawSign(t, jwt.SigningMethodEdDSA, s.private, with(wire.LaneClaimVersion, 1.5), ""), now, ErrMalformed},
		{"a version past 2^53", rawSign(t, jwt.SigningMethodEdDSA, s.private, with(wire.LaneClaimVersion, int64(1)<<53), ""), now, ErrMalformed},
		{"a version that is an object", rawSign(t, jwt.SigningMethodEdDSA, s.private, with(wire.LaneClaimVersion, map[string]any{}), ""), now, ErrMalformed},
		{"no expiry", rawSign(t, jwt.SigningMethodEdDSA, s.private, with("exp", nil), s.kid), now, ErrMalformed},
		{"no environment", rawSign(t, jwt.SigningMethodEdDSA, s.private, with(wire.LaneClaimEnv, nil), s.kid), now, ErrMalformed},
		{"the long claim names of before", rawSign(t, jwt.SigningMethodEdDSA, s.private, jwt.MapClaims{"env": "gray", "iss": wire.LaneIssuer, "exp": now.Add(time.Minute).Unix()}, ""), now, ErrMalformed},
		{"a membership token", s.SignMember("shop-v2", "gray", "7", "sub:alice", now, time.Hour), now, ErrMalformed},
		{"garbage", "gray", now, ErrMalformed},
		{"empty", "", now, ErrMalformed},
		{"huge", strings.Repeat("a", 2000), now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Verify(tt.token, tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := s.Verify(tok, now.Add(time.Minute+ClockSkew-time.Second)); err != nil {
		t.Fatalf("within the clock skew: %v", err)
	}
	withKid := rawSign(t, jwt.SigningMethodEdDSA, s.private, valid, s.kid)
	if _, err := s.Verify(withKid, now); err != nil {
		t.Fatalf("naming the key: Envoy uses it, so does Verify: %v", err)
	}
	emptyKid := rawSignHeader(t, s.private, valid, map[string]any{"kid": ""})
	if _, err := s.Verify(emptyKid, now); err != nil {
		t.Fatalf("an empty kid: Envoy tries every key, so does Verify: %v", err)
	}
}

// rawSignHeader signs claims with key (EdDSA) under a header with extra
// fields of our choosing.
func rawSignHeader(t *testing.T, key any, c jwt.MapClaims, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	for k, v := range extra {
		tok.Header[k] = v
	}
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLaneFormat pins the lane's bytes: every byte is carried by every
// hop of every request. The header is {"alg":"EdDSA"} alone (no typ, no
// kid), the claims have one-letter names, an integral version is a JSON
// number and the issuer is wire.LaneIssuer; the bench's lane (gray,
// shop-v2, version 1) is 188 bytes, 258 before.
func TestLaneFormat(t *testing.T) {
	s := signer(t, meshKey, otherKey)
	decode := func(part string) string {
		b, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		tok, payload string
		bytes        int
	}{
		{s.Sign("gray", "shop-v2", "1", now), `{"e":"gray","r":"shop-v2","v":1,"iss":"gl","exp":1795262460}`, 188},
		{s.SignStressLane("gray", "shop-v2", "12345", now), `{"e":"gray","r":"shop-v2","v":12345,"s":1,"iss":"gl","exp":1795262460}`, 202},
		{s.Sign("stable", "", "", now), `{"e":"stable","iss":"gl","exp":1795262460}`, 164},
		// Not an integer strconv spells this way: a string, as Envoy copies it.
		{s.Sign("gray", "shop-v2", "07", now), `{"e":"gray","r":"shop-v2","v":"07","iss":"gl","exp":1795262460}`, 192},
		{s.Sign("gray", "shop-v2", "9007199254740992", now), `{"e":"gray","r":"shop-v2","v":"9007199254740992","iss":"gl","exp":1795262460}`, 0},
	} {
		parts := strings.Split(c.tok, ".")
		if len(parts) != 3 || decode(parts[0]) != `{"alg":"EdDSA"}` || decode(parts[1]) != c.payload {
			t.Errorf("lane %q: %q %q", c.tok, decode(parts[0]), decode(parts[1]))
		}
		if c.bytes != 0 && len(c.tok) != c.bytes {
			t.Errorf("lane %s is %d bytes, want %d", c.payload, len(c.tok), c.bytes)
		}
		l, err := s.Verify(c.tok, now)
		if err != nil {
			t.Errorf("lane %s: %v", c.payload, err)
			continue
		}
		if again := s.sign(laneKey{env: l.Env, release: l.Release, version: l.Version, stress: l.Stress}, l.Expires); again != c.tok {
			t.Errorf("lane %s does not read back to itself: %+v", c.payload, l)
		}
	}
	// Read as a string too (Envoy copies either): a lane in which an
	// integral version is a string verifies with the same version.
	str := rawSignHeader(t, s.private, jwt.MapClaims{wire.LaneClaimEnv: "gray", wire.LaneClaimVersion: "7", wire.LaneClaimStress: "1", "iss": wire.LaneIssuer, "exp": now.Add(time.Minute).Unix()}, nil)
	if l, err := s.Verify(str, now); err != nil || l.Version != "7" || !l.Stress {
		t.Errorf("string claims: %+v, %v", l, err)
	}
}

// TestClaimNames: the claims' JSON names are the wire's, which Envoy's
// claim_to_headers reads.
func TestClaimNames(t *testing.T) {
	b, err := json.Marshal(claims{Env: "x", Release: "x", Version: "x", Stress: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, name := range []string{wire.LaneClaimEnv, wire.LaneClaimRelease, wire.LaneClaimVersion, wire.LaneClaimStress} {
		if m[name] != "x" {
			t.Errorf("claim %q missing from %s", name, b)
		}
	}
	if wire.LaneIssuer == wire.StressIssuer {
		t.Error("a stress marker's issuer is a lane's")
	}
}

// TestRotation: a signer given the previous mesh key as a verify key
// signs with the new one and accepts lanes and memberships either signed;
// its key set publishes both, the signing key first.
func TestRotation(t *testing.T) {
	old := signer(t, otherKey)
	rotated := signer(t, meshKey, otherKey)
	if rotated.KeyID() != signer(t, meshKey).KeyID() || rotated.KeyID() == old.KeyID() {
		t.Fatal("the signing key is not the new mesh key's")
	}
	for name, tok := range map[string]string{"old": old.Sign("gray", "r", "1", now), "new": rotated.Sign("gray", "r", "1", now)} {
		if _, err := rotated.Verify(tok, now); err != nil {
			t.Errorf("%s lane: %v", name, err)
		}
	}
	if _, err := old.Verify(rotated.Sign("gray", "r", "1", now), now); !errors.Is(err, ErrSignature) {
		t.Fatalf("a signer without the new key: %v", err)
	}
	member := old.SignMember("r", "gray", "1", "sub:alice", now, time.Hour)
	if _, err := rotated.VerifyMember(member, "sub:alice", now); err != nil {
		t.Fatalf("membership signed with the previous key: %v", err)
	}
	var set struct {
		Keys []struct{ Kty, Crv, Alg, Kid, X string }
	}
	if err := json.Unmarshal([]byte(rotated.JWKS()), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS %s: %v", rotated.JWKS(), err)
	}
	for i, want := range []*Signer{rotated, old} {
		k := set.Keys[i]
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid != want.KeyID() || !ed25519.PublicKey(x).Equal(want.private.Public()) {
			t.Errorf("key %d: %+v", i, k)
		}
	}
	if dup := signer(t, meshKey, meshKey); strings.Count(dup.JWKS(), `"kid"`) != 1 {
		t.Fatalf("a verify key equal to the signing key is published twice: %s", dup.JWKS())
	}
}

func TestNewSignerRefuses(t *testing.T) {
	if _, err := NewSigner([]byte("short"), time.Minute); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewSigner([]byte(meshKey), time.Minute, []byte("short")); err == nil {
		t.Fatal("short verify key accepted")
	}
	if _, err := NewSigner([]byte(meshKey), 0); err == nil {
		t.Fatal("no ttl accepted")
	}
}

func FuzzVerify(f *testing.F) {
	s := signer(f, meshKey)
	f.Add(s.Sign("gray", "shop-v2", "v", now))
	f.Add("eyJhbGciOiJub25lIn0.eyJlbnYiOiJncmF5In0.")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		l, err := s.Verify(tok, now)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		if s.Sign(l.Env, l.Release, l.Version, l.Expires.Add(-s.TTL())) != tok {
			t.Fatalf("accepted a token the signer would not produce: %q", tok)
		}
	})
}

func TestMembership(t *testing.T) {
	s := signer(t, meshKey)
	tok := s.SignMember("shop-v2", "gray", "7", "alice", now, time.Hour)
	m, err := s.VerifyMember(tok, "alice", now.Add(time.Minute))
	if err != nil || m.Release != "shop-v2" || m.Env != "gray" || m.Version != "7" || !m.Admitted.Equal(now) {
		t.Fatalf("%+v %v", m, err)
	}
	if strings.Contains(tok, "alice") {
		t.Fatal("token names the subject")
	}
	for _, c := range []struct {
		name, tok, subject string
		at                 time.Time
		want               error
	}{
		{"other subject", tok, "bob", now, ErrSignature},
		{"expired", tok, "alice", now.Add(time.Hour), ErrExpired},
		{"release swapped", strings.Replace(tok, "shop-v2", "shop-v3", 1), "alice", now, ErrSignature},
		{"a lane is not a membership", s.Sign("gray", "shop-v2", "7", now), "alice", now, ErrMalformed},
		{"no subject", tok, "", now, ErrMalformed},
		{"another mesh key", signer(t, otherKey).SignMember("shop-v2", "gray", "7", "alice", now, time.Hour), "alice", now, ErrSignature},
	} {
		if _, err := s.VerifyMember(c.tok, c.subject, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
