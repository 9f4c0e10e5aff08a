package lane

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func signer(t testing.TB, key string) *Signer {
	t.Helper()
	s, err := NewSigner([]byte(key), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := signer(t, "mesh-key-0123456789abcdef-0123456789")
	tok := s.Sign("gray", "shop-v2", "9d338e2ddac7", now)
	l, err := s.Verify(tok, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l.Env != "gray" || l.Release != "shop-v2" || l.Version != "9d338e2ddac7" {
		t.Fatalf("%+v", l)
	}
	other := signer(t, "other-key-0123456789abcdef-01234567")
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired", tok, now.Add(time.Minute), ErrExpired},
		{"other key", other.Sign("gray", "shop-v2", "v", now), now, ErrSignature},
		{"env swapped", strings.Replace(tok, ":gray:", ":prod:", 1), now, ErrSignature},
		{"expiry extended", strings.Replace(tok, tok[strings.LastIndex(tok[:strings.LastIndex(tok, ":")], ":")+1:strings.LastIndex(tok, ":")], "9999999999", 1), now, ErrSignature},
		{"no signature", "v1:gray:r:v:9999999999", now, ErrMalformed},
		{"garbage", "gray", now, ErrMalformed},
		{"wrong version", "v0:gray:r:v:1:sig", now, ErrMalformed},
		{"empty env", "v1::r:v:1:sig", now, ErrMalformed},
		{"huge", strings.Repeat("a", 1000), now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Verify(tt.token, tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewSignerRefusesShortKey(t *testing.T) {
	if _, err := NewSigner([]byte("short"), time.Minute); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestBaggage(t *testing.T) {
	tests := []struct {
		header, token, want, lane string
	}{
		{"", "T", "graymesh-lane=T", ""},
		{"userId=alice,session=1;prop=x", "T", "userId=alice,session=1;prop=x,graymesh-lane=T", ""},
		{"graymesh-lane=forged,userId=alice", "T", "userId=alice,graymesh-lane=T", "forged"},
		{" graymesh-lane = a ; p=1 , graymesh-lane=b", "", "", "a"},
		{"a=1", "", "a=1", ""},
	}
	for _, tt := range tests {
		if got := WithLane(tt.header, tt.token); got != tt.want {
			t.Errorf("WithLane(%q, %q) = %q, want %q", tt.header, tt.token, got, tt.want)
		}
		if got := FromBaggage(tt.header); got != tt.lane {
			t.Errorf("FromBaggage(%q) = %q, want %q", tt.header, got, tt.lane)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := signer(f, "mesh-key-0123456789abcdef-0123456789")
	f.Add(s.Sign("gray", "shop-v2", "v", now))
	f.Add("v1:gray:r:v:1:sig")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		l, err := s.Verify(tok, now)
		if err == nil && s.Sign(l.Env, l.Release, l.Version, l.Expires.Add(-time.Minute)) != tok {
			t.Fatalf("accepted a token the signer would not produce: %q", tok)
		}
	})
}

func FuzzBaggage(f *testing.F) {
	f.Add("userId=alice,graymesh-lane=x;p=1")
	f.Fuzz(func(t *testing.T, header string) {
		out := WithLane(header, "T")
		if FromBaggage(out) != "T" {
			t.Fatalf("WithLane(%q) = %q loses the lane", header, out)
		}
	})
}

func TestMembership(t *testing.T) {
	s := signer(t, "mesh-key-0123456789abcdef-0123456789")
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
	} {
		if _, err := s.VerifyMember(c.tok, c.subject, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
