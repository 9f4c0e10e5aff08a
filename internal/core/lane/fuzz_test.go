package lane

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyMember feeds arbitrary membership tokens and subjects. It must
// never panic and fail only with the three named errors; a token it
// accepts is exactly the one SignMember makes for what it returns, has not
// expired, is refused for any other subject, and is not a lane.
func FuzzVerifyMember(f *testing.F) {
	s := signer(f, "mesh-key-0123456789abcdef-0123456789")
	member := s.SignMember("shop-v2", "gray", "7", "sub:alice", now, time.Hour)
	f.Add(member, "sub:alice")
	f.Add(member, "sub:bob")
	f.Add(member, "")
	f.Add(s.SignMember("r", "e", "", "dev:d-1", now.Add(-2*time.Hour), time.Hour), "dev:d-1")
	f.Add(s.Sign("gray", "shop-v2", "7", now), "sub:alice")
	f.Add("m1:shop-v2:gray:7:1:9999999999:forged", "sub:alice")
	f.Add("m1:a:b:c:+1:-0:x", "s")
	f.Add(strings.Repeat(":", 600), "s")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, token, subject string) {
		m, err := s.VerifyMember(token, subject, now)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unnamed error %v", err)
			}
			if m != (Member{}) {
				t.Fatalf("member %+v returned with an error", m)
			}
			return
		}
		if m.Release == "" || m.Env == "" || !now.Before(m.Expires) {
			t.Fatalf("accepted %+v", m)
		}
		if got := s.SignMember(m.Release, m.Env, m.Version, subject, m.Admitted, m.Expires.Sub(m.Admitted)); got != token {
			t.Fatalf("accepted %q for %q; the signer makes %q", token, subject, got)
		}
		if _, err := s.VerifyMember(token, subject+"x", now); !errors.Is(err, ErrSignature) {
			t.Fatalf("accepted for another subject: %v", err)
		}
		if _, err := s.Verify(token, now); err == nil {
			t.Fatal("a membership token verified as a lane")
		}
	})
}
