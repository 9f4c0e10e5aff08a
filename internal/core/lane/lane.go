// Package lane carries the edge's decision to every later hop of a call
// chain. The edge signs the lane (environment, release, config version,
// expiry) as a compact JWS with an Ed25519 key derived from the mesh key
// and sends it in the x-graymesh-lane header; every inner hop's Envoy
// verifies it itself (jwt_authn) with the public keys graymesh pushes to
// it (JWKS), so inner hops never ask graymesh. Sidecars hold only public
// keys.
//
// A lane names no caller, so one lane serves every request of the same
// environment, release and version in one expiry window: the signer signs
// it once per window and Envoy's JWT cache verifies it once per sidecar.
package lane

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

// ClockSkew is how long past its expiry a lane is still honoured, by
// graymesh and by Envoy (jwt_authn clock_skew_seconds): nodes run NTP, and
// a lane has at least half its TTL left when the edge hands it out, so
// skew only widens the replay window.
const ClockSkew = 5 * time.Second

// maxTokenBytes bounds what Verify parses.
const maxTokenBytes = 1024

// maxCached bounds the signed lanes kept for one window. A config has a
// handful of (environment, release) pairs; the bound only guards memory.
const maxCached = 1024

// Lane is the decision the edge made.
type Lane struct {
	Env     string
	Release string
	Version string
	Expires time.Time
	// Stress marks the lane of a stress-test request (SignStressLane).
	Stress bool
}

// Verification failures, as reasons.
var (
	ErrMalformed  = errors.New("lane-malformed")
	ErrSignature  = errors.New("lane-bad-signature")
	ErrExpired    = errors.New("lane-expired")
	ErrUnknownKey = errors.New("lane-unknown-key")
)

// Signer signs lanes with the key derived from one mesh key and verifies
// them with it and the keys derived from the verify keys. It also signs
// membership tokens (HMAC with the mesh key). Safe for concurrent use.
type Signer struct {
	ttl, window time.Duration
	// macKeys are the mesh keys: the first signs, all verify.
	macKeys [][]byte
	private ed25519.PrivateKey
	kid     string
	// KeySet holds every key lanes verify with, the signing key first,
	// and jwks is their JSON Web Key Set.
	KeySet
	jwks string

	mu    sync.Mutex
	cache windowCache
}

type laneKey struct {
	env, release, version string
	stress                bool
}

// windowCache holds the lanes signed for one window.
type windowCache struct {
	start  int64
	tokens map[laneKey]string
}

// NewSigner returns a signer for the mesh key; lanes it signs expire at
// most ttl after they are handed out. Lanes signed with a key derived from
// any of verify are accepted too (key rotation).
func NewSigner(key []byte, ttl time.Duration, verify ...[]byte) (*Signer, error) {
	if ttl <= 0 {
		return nil, errors.New("lane ttl must be positive")
	}
	s := &Signer{ttl: ttl, window: windowFor(ttl), KeySet: KeySet{public: map[string]ed25519.PublicKey{}}}
	for i, k := range append([][]byte{key}, verify...) {
		what := "lane key"
		if i > 0 {
			what = fmt.Sprintf("lane verify key %d", i)
		}
		if err := config.CheckSecret(k, what); err != nil {
			return nil, err
		}
		private := ed25519.NewKeyFromSeed(derive(k, "lane ed25519"))
		public, _ := private.Public().(ed25519.PublicKey)
		kid := keyID(public)
		if i == 0 {
			s.private, s.kid = private, kid
		}
		s.add(kid, public)
		s.macKeys = append(s.macKeys, k)
	}
	s.jwks = s.buildJWKS()
	return s, nil
}

// windowFor is the length of an expiry window: half the TTL in whole
// seconds (at least one), so a lane handed out at any moment of its window
// has at least ttl/2 left.
func windowFor(ttl time.Duration) time.Duration {
	return max((ttl / 2).Truncate(time.Second), time.Second)
}

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// TTL is how long a lane is valid at most after it is handed out.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Window is how long the signer hands out the same lane: windows start
// at multiples of it since the Unix epoch.
func (s *Signer) Window() time.Duration { return s.window }

// KeyID is the kid of the key new lanes are signed with, in the JWKS
// (lanes themselves name no key; stress markers do).
func (s *Signer) KeyID() string { return s.kid }

// JWKS is the JSON Web Key Set of every key a lane verifies with: what
// inner hops' Envoys are given (jwt_authn local_jwks).
func (s *Signer) JWKS() string { return s.jwks }

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	X   string `json:"x"`
}

func (s *Signer) buildJWKS() string {
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, kid := range s.kids {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: kid,
			X: base64.RawURLEncoding.EncodeToString(s.public[kid])})
	}
	b, _ := json.Marshal(set)
	return string(b)
}

// claims are a lane's JWT claims; wire names the ones Envoy copies into
// headers (the tags must be wire.LaneClaim*: TestClaimNames).
type claims struct {
	Env     string    `json:"e"`
	Release string    `json:"r,omitempty"`
	Version claimText `json:"v,omitempty"`
	Stress  claimText `json:"s,omitempty"`
	jwt.RegisteredClaims
}

// maxClaimInt is the largest integer a lane writes as a JSON number:
// Envoy holds a claim's number as a double, exact up to 2^53.
const maxClaimInt = 1<<53 - 1

// claimText is a claim that becomes a header at an inner hop, as the
// text Envoy's claim_to_headers makes of it. It is written as a JSON
// number when it is an integer from 0 to maxClaimInt spelled the one
// way strconv does (Envoy writes such a number back as that decimal
// text, two quote bytes shorter than the string), else as a string. It
// reads a string, or an integral number in that range; any other value
// is refused (Envoy would write a negative or fractional number as
// "-3.000000", which no kill route reads as the version).
type claimText string

func (c claimText) MarshalJSON() ([]byte, error) {
	if n, err := strconv.ParseInt(string(c), 10, 64); err == nil && n >= 0 && n <= maxClaimInt && strconv.FormatInt(n, 10) == string(c) {
		return []byte(c), nil
	}
	return json.Marshal(string(c))
}

func (c *claimText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		*c = claimText(str)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 || n > maxClaimInt || strconv.FormatInt(n, 10) != string(b) {
		return fmt.Errorf("lane claim %s: not a string or an integer from 0 to 2^53-1", b)
	}
	*c = claimText(b)
	return nil
}

// Sign returns the lane for a decision made at now. Every request of the
// same environment, release and version in one window gets the same
// token, which expires ttl after the window began; Ed25519 signatures are
// deterministic, so every graymesh with the same mesh key hands out the
// very same token.
func (s *Signer) Sign(env, release, configVersion string, now time.Time) string {
	return s.signCached(laneKey{env: env, release: release, version: configVersion}, now)
}

// SignStressLane is Sign for a stress-test request: the lane also carries
// wire.LaneClaimStress, which every inner hop's Envoy turns into the
// wire.HeaderStress its service reads.
func (s *Signer) SignStressLane(env, release, configVersion string, now time.Time) string {
	return s.signCached(laneKey{env: env, release: release, version: configVersion, stress: true}, now)
}

func (s *Signer) signCached(k laneKey, now time.Time) string {
	w := int64(s.window / time.Second)
	start := now.Unix() / w * w
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache.start != start || s.cache.tokens == nil {
		s.cache = windowCache{start: start, tokens: map[laneKey]string{}}
	}
	if tok, ok := s.cache.tokens[k]; ok {
		return tok
	}
	tok := s.sign(k, time.Unix(start, 0).Add(s.ttl))
	if len(s.cache.tokens) < maxCached {
		s.cache.tokens[k] = tok
	}
	return tok
}

func (s *Signer) sign(k laneKey, exp time.Time) string {
	c := claims{Env: k.env, Release: k.release, Version: claimText(k.version),
		RegisteredClaims: jwt.RegisteredClaims{Issuer: wire.LaneIssuer, ExpiresAt: jwt.NewNumericDate(exp)}}
	if k.stress {
		c.Stress = "1"
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	// The header is {"alg":"EdDSA"} alone, 20 bytes of the lane: no typ
	// (nobody reads it) and no kid. Envoy's jwt_authn tries every key of
	// the set for a JWS without kid (checked with Envoy 1.40, the signing
	// key second in the set), and so does Verify; a sidecar's JWT cache
	// means that happens once per lane and window, and graymesh publishes
	// the signing key first.
	delete(t.Header, "typ")
	tok, err := t.SignedString(s.private)
	if err != nil {
		// Ed25519 signing of a JSON payload cannot fail.
		panic(fmt.Sprintf("lane: signing: %v", err))
	}
	return tok
}

// Verify checks a lane as an inner hop's Envoy does: EdDSA only, a key
// from the set (by kid, or any without one), graymesh's issuer, an expiry
// not passed by more than ClockSkew.
func (s *KeySet) Verify(token string, now time.Time) (Lane, error) {
	var c claims
	if err := s.parse(token, wire.LaneIssuer, &c, now); err != nil {
		return Lane{}, err
	}
	if c.Env == "" {
		return Lane{}, ErrMalformed
	}
	return Lane{Env: c.Env, Release: c.Release, Version: string(c.Version), Expires: c.ExpiresAt.Time, Stress: c.Stress == "1"}, nil
}

// parse verifies token into c: a compact JWS of EdDSA only, a key from
// the set (by kid, or any without one), issuer's, an expiry not passed by
// more than ClockSkew; extra options add checks. Its errors are the
// verification failures above.
func (s *KeySet) parse(token, issuer string, c jwt.Claims, now time.Time, extra ...jwt.ParserOption) error {
	if len(token) > maxTokenBytes || token == "" || !compactJWS(token) {
		return ErrMalformed
	}
	opts := append([]jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// One spelling per token: base64 with stray trailing bits is not
		// another way to write a token graymesh signed.
		jwt.WithStrictDecoding(),
	}, extra...)
	_, err := jwt.ParseWithClaims(token, c, s.keyFor, opts...)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return ErrUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case err != nil:
		return ErrMalformed
	}
	return nil
}

// compactJWS reports whether token is made only of the characters of a
// JWS compact serialization: base64url (RFC 7515 §2, RFC 4648 §5) and the
// dots between the parts. Go's base64 decoder skips '\r' and '\n', so
// without this a lane with a line break in it would verify as the one
// graymesh signed: another spelling of the same lane.
func compactJWS(token string) bool {
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// keyFor picks the keys a token verifies with as Envoy's jwt_authn
// does: without kid (or with an empty one), every key of the set; with
// one, the key of that kid; a kid that is no string is malformed.
func (s *KeySet) keyFor(t *jwt.Token) (any, error) {
	raw, named := t.Header["kid"]
	kid, isString := raw.(string)
	if named && !isString {
		return nil, ErrMalformed
	}
	if kid == "" {
		if len(s.kids) == 0 {
			return nil, ErrUnknownKey
		}
		set := jwt.VerificationKeySet{}
		for _, k := range s.kids {
			set.Keys = append(set.Keys, s.public[k])
		}
		return set, nil
	}
	if k, found := s.public[kid]; found {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// derive returns a 32-byte key for purpose, derived from a mesh key with
// HMAC-SHA256 over the purpose's name.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("derive:" + purpose))
	return m.Sum(nil)
}

// DeriveKey returns a 32-byte key for another purpose, derived from the
// mesh key, so the mesh key itself signs nothing but memberships.
func (s *Signer) DeriveKey(purpose string) []byte { return derive(s.macKeys[0], purpose) }
