package lane

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// TestStressMarker: a marker verifies for its release until it expires,
// under a verify key after a rotation too; a marker is never a lane and a
// lane never a marker; another mesh's marker and out-of-bounds lifetimes
// are refused.
func TestStressMarker(t *testing.T) {
	s := signer(t, meshKey)
	tok, err := s.SignStress("shop-v2", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.VerifyStress(tok, now.Add(59*time.Minute))
	if err != nil || m.Release != "shop-v2" || !m.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("marker: %+v, %v", m, err)
	}
	if _, err := s.VerifyStress(tok, now.Add(time.Hour+ClockSkew+time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired marker: %v", err)
	}
	if _, err := s.Verify(tok, now); err == nil {
		t.Error("a stress marker verified as a lane")
	}
	if _, err := s.VerifyStress(s.Sign("gray", "shop-v2", "1", now), now); err == nil {
		t.Error("a lane verified as a stress marker")
	}
	rotated := signer(t, otherKey, meshKey)
	if m, err := rotated.VerifyStress(tok, now); err != nil || m.Release != "shop-v2" {
		t.Errorf("marker of the previous key after a rotation: %+v, %v", m, err)
	}
	if _, err := signer(t, otherKey).VerifyStress(tok, now); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another mesh's marker: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, MaxStressTTL + time.Second} {
		if _, err := s.SignStress("shop-v2", now, ttl); !errors.Is(err, ErrStressTTL) {
			t.Errorf("ttl %s: %v", ttl, err)
		}
	}
	// Signed with the right key, but living longer than any marker
	// graymesh mints.
	long := rawSign(t, jwt.SigningMethodEdDSA, s.private, jwt.MapClaims{
		"iss": wire.StressIssuer, "rel": "shop-v2", "iat": now.Unix(), "exp": now.Add(48 * time.Hour).Unix(),
	}, s.kid)
	if _, err := s.VerifyStress(long, now); !errors.Is(err, ErrMalformed) {
		t.Errorf("a 48h marker: %v", err)
	}
	for _, bad := range []string{"", "x", tok + "\n", tok[:len(tok)-2]} {
		if _, err := s.VerifyStress(bad, now); err == nil {
			t.Errorf("%q verified", bad)
		}
	}
}

// TestStressLane: a stress request's lane says so, is its own token in the
// window, and verifies like any lane.
func TestStressLane(t *testing.T) {
	s := signer(t, meshKey)
	plain, stress := s.Sign("gray", "shop-v2", "7", now), s.SignStressLane("gray", "shop-v2", "7", now)
	if plain == stress {
		t.Fatal("a stress lane is the same token as a plain one")
	}
	if s.SignStressLane("gray", "shop-v2", "7", now.Add(time.Second)) != stress {
		t.Error("a stress lane is signed anew within its window")
	}
	l, err := s.Verify(stress, now)
	if err != nil || !l.Stress || l.Env != "gray" {
		t.Fatalf("stress lane: %+v, %v", l, err)
	}
	if l, _ := s.Verify(plain, now); l.Stress {
		t.Error("a plain lane says stress")
	}
}
