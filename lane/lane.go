// Package lane carries the edge's decision to every later hop of a call
// chain. The edge signs the lane (environment, release, config version,
// expiry) with the mesh key and puts it in the W3C baggage header as member
// "graymesh-lane", so services instrumented with OpenTelemetry forward it
// without code. An inner hop trusts a lane only when its signature and
// expiry check out.
package lane

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/wire"
)

// version prefixes every token so the format can change safely.
const version = "v1"

// sigBytes is the truncated HMAC-SHA256 length: 128 bits.
const sigBytes = 16

// Lane is the decision the edge made.
type Lane struct {
	Env     string
	Release string
	Version string
	Expires time.Time
}

// Signer signs and verifies lanes with one mesh key.
type Signer struct {
	key []byte
	ttl time.Duration
}

// NewSigner returns a signer; lanes it signs expire after ttl.
func NewSigner(key []byte, ttl time.Duration) (*Signer, error) {
	if err := config.CheckSecret(key, "lane key"); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, errors.New("lane ttl must be positive")
	}
	return &Signer{key: key, ttl: ttl}, nil
}

// Sign returns the token for a lane decided now. Fields are separated by
// ':' which never occurs in environment, release or version names, and every
// character is legal in a baggage value.
func (s *Signer) Sign(env, release, configVersion string, now time.Time) string {
	exp := strconv.FormatInt(now.Add(s.ttl).Unix(), 10)
	payload := version + ":" + env + ":" + release + ":" + configVersion + ":" + exp
	return payload + ":" + s.mac(payload)
}

func (s *Signer) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:sigBytes])
}

// Verification failures, as reasons.
var (
	ErrMalformed = errors.New("lane-malformed")
	ErrSignature = errors.New("lane-bad-signature")
	ErrExpired   = errors.New("lane-expired")
)

// Verify checks a token's signature and expiry.
func (s *Signer) Verify(token string, now time.Time) (Lane, error) {
	if len(token) > 512 {
		return Lane{}, ErrMalformed
	}
	i := strings.LastIndexByte(token, ':')
	if i < 0 {
		return Lane{}, ErrMalformed
	}
	payload, sig := token[:i], token[i+1:]
	parts := strings.Split(payload, ":")
	if len(parts) != 5 || parts[0] != version || parts[1] == "" {
		return Lane{}, ErrMalformed
	}
	if !equal(sig, s.mac(payload)) {
		return Lane{}, ErrSignature
	}
	exp, err := strconv.ParseInt(parts[4], 10, 64)
	if err != nil {
		return Lane{}, ErrMalformed
	}
	l := Lane{Env: parts[1], Release: parts[2], Version: parts[3], Expires: time.Unix(exp, 0)}
	if !now.Before(l.Expires) {
		return Lane{}, ErrExpired
	}
	return l, nil
}

func equal(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// FromBaggage returns the value of the graymesh-lane member in a baggage
// header ("" when absent). Several baggage headers are joined with ','.
func FromBaggage(header string) string {
	for header != "" {
		var member string
		member, header, _ = strings.Cut(header, ",")
		kv, _, _ := strings.Cut(member, ";")
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == wire.BaggageLaneKey {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WithLane returns header with every graymesh-lane member removed and, when
// token is not "", one member holding token appended. Other members are
// kept unchanged: graymesh adds to baggage, never overwrites others'.
func WithLane(header, token string) string {
	var out []string
	for _, member := range strings.Split(header, ",") {
		kv, _, _ := strings.Cut(member, ";")
		k, _, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(member) == "" || strings.TrimSpace(k) == wire.BaggageLaneKey {
			continue
		}
		out = append(out, strings.TrimSpace(member))
	}
	if token != "" {
		out = append(out, wire.BaggageLaneKey+"="+token)
	}
	return strings.Join(out, ",")
}

// DeriveKey returns a 32-byte key for another purpose, derived from the
// mesh key with HMAC-SHA256 over the purpose's name, so the mesh key itself
// signs nothing but lanes and memberships.
func (s *Signer) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("derive:" + purpose))
	return m.Sum(nil)
}
