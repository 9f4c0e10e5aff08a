package identity

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// fuzzEnv is a verifier with one HS256 and one RS256 key, plus what an
// independent check of its answers needs. The keys are fixed (the RSA key
// is in testdata), so every fuzz worker verifies the seed tokens alike.
type fuzzEnv struct {
	hs  []byte
	rs  *rsa.PrivateKey
	now time.Time
	// plain verifies every token in full; cached remembers verified ones.
	plain, cached *Verifier
}

var fuzzNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	pemBytes, err := os.ReadFile(filepath.Join("testdata", "fuzz-rs256.key"))
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := jwt.ParseRSAPrivateKeyFromPEM(pemBytes)
	if err != nil {
		tb.Fatal(err)
	}
	e := &fuzzEnv{hs: []byte("fuzz-hs256-secret-0123456789abcdef"), rs: rs, now: fuzzNow}
	dir := tb.TempDir()
	der, err := x509.MarshalPKIXPublicKey(&rs.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rs.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hs.secret"), e.hs, 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg := config.Identity{
		DeviceCookie: "gm_device",
		JWT: config.JWT{
			Cookie: "gm_token",
			Provider: config.Provider{
				SubjectClaim: "sub",
				Algorithms:   []string{"HS256", "RS256"},
				Keys: []config.Key{
					{ID: "hs", Algorithm: "HS256", SecretFile: "hs.secret"},
					{ID: "rs", Algorithm: "RS256", PublicKeyFile: "rs.pem"},
				},
			},
		},
	}
	build := func(cacheSize int) *Verifier {
		c := cfg
		c.JWT.CacheSize = cacheSize
		v, err := New(c, func(p string) string { return filepath.Join(dir, p) }, WithClock(func() time.Time { return e.now }))
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
	e.plain, e.cached = build(0), build(64)
	return e
}

// signRaw signs header and payload JSON exactly as written, so tests can
// build tokens no JWT library would produce (repeated claims, crit, jku).
func signRaw(tb testing.TB, m jwt.SigningMethod, header, payload string, key any) string {
	tb.Helper()
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	sig, err := m.Sign(input, key)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// seeds are tokens worth starting from: valid ones and each kind of
// hostile one.
func (e *fuzzEnv) seeds(tb testing.TB) []string {
	exp := e.now.Add(time.Hour).Unix()
	c := func(sub string) jwt.MapClaims { return jwt.MapClaims{"sub": sub, "exp": exp, "tier": "beta"} }
	hsKid := sign(tb, jwt.SigningMethodHS256, "hs", c("alice"), e.hs)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: func() []byte { b, _ := x509.MarshalPKIXPublicKey(&e.rs.PublicKey); return b }()})
	payload := `{"sub":"alice","exp":` + jsonInt(exp) + `}`
	return []string{
		hsKid,
		sign(tb, jwt.SigningMethodHS256, "", c("bob"), e.hs),
		sign(tb, jwt.SigningMethodRS256, "rs", c("carol"), e.rs),
		sign(tb, jwt.SigningMethodNone, "", c("alice"), jwt.UnsafeAllowNoneSignatureType),
		sign(tb, jwt.SigningMethodHS256, "rs", c("alice"), pub),
		hsKid[:len(hsKid)/2],
		hsKid[:strings.LastIndexByte(hsKid, '.')],
		hsKid[:len(hsKid)-1] + "\n" + hsKid[len(hsKid)-1:],
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256","kid":"hs"}`, `{"sub":"bob","exp":`+jsonInt(exp)+`,"sub":"alice"}`, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256","kid":"hs","crit":["exp"]}`, payload, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256","kid":"hs","jku":"http://127.0.0.1:1/jwks"}`, payload, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256","kid":7}`, payload, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256"}`, `{"sub":42,"exp":`+jsonInt(exp)+`}`, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256"}`, `{"sub":"alice","exp":"`+jsonInt(exp)+`"}`, e.hs),
		signRaw(tb, jwt.SigningMethodHS256, `{"alg":"HS256"}`, `["sub","alice"]`, e.hs),
		"", ".", "..", "a.b.c", "@@@.###.$$$", "e30.e30.",
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// FuzzVerify feeds arbitrary token strings to the verifier. It must never
// panic, the cached and uncached verifiers must agree, and an accepted
// token must pass an independent check: its signature verifies with one
// of the two keys (computed here with crypto/hmac and crypto/rsa, not the
// JWT library), it has no crit header, its exp is in the future, and the
// subject returned is the one its payload names — first and last
// occurrence alike.
func FuzzVerify(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range e.seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := e.plain.Verify(token)
		cid, cerr := e.cached.Verify(token)
		if (err == nil) != (cerr == nil) || (err == nil && id.Subject != cid.Subject) {
			t.Fatalf("cached and uncached disagree: %v / %v", err, cerr)
		}
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			if Problem(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if sub, why := e.independentlyVerified(token); why != "" {
			t.Fatalf("accepted %q: %s", token, why)
		} else if sub != id.Subject {
			t.Fatalf("accepted %q as %q, but it names %q", token, id.Subject, sub)
		}
		if again, err := e.plain.Verify(token); err != nil || again.Subject != id.Subject {
			t.Fatalf("accepted once, not twice: %v", err)
		}
	})
}

// independentlyVerified checks an accepted token without the JWT library.
// It returns the subject, or why the token should not have been accepted.
func (e *fuzzEnv) independentlyVerified(token string) (subject, why string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "not three segments"
	}
	b64 := base64.RawURLEncoding
	headerJSON, err1 := b64.DecodeString(parts[0])
	payload, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", "a segment is not base64url"
	}
	var header map[string]any
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return "", "header is not a JSON object"
	}
	if _, crit := header["crit"]; crit {
		return "", "crit header accepted"
	}
	alg, _ := header["alg"].(string)
	if kid, present := header["kid"]; present {
		want := map[string]string{"hs": "HS256", "rs": "RS256", "": alg}
		k, isString := kid.(string)
		if !isString || want[k] != alg {
			return "", "kid does not name a key of the token's algorithm"
		}
	}
	input := []byte(parts[0] + "." + parts[1])
	switch alg {
	case "HS256":
		m := hmac.New(sha256.New, e.hs)
		m.Write(input)
		if !hmac.Equal(m.Sum(nil), sig) {
			return "", "HS256 signature does not verify"
		}
	case "RS256":
		sum := sha256.Sum256(input)
		if rsa.VerifyPKCS1v15(&e.rs.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			return "", "RS256 signature does not verify"
		}
	default:
		return "", "algorithm " + alg + " accepted"
	}
	first, last, dup, repeated, err := scanClaims(payload)
	if err != nil {
		return "", "payload is not a JSON object: " + err.Error()
	}
	if repeated {
		return "", "payload repeats claim " + strconv.Quote(dup)
	}
	sub, ok := first["sub"].(string)
	if !ok || sub == "" || last["sub"] != first["sub"] {
		return "", "no single string subject"
	}
	exp, ok := first["exp"].(float64)
	if !ok || exp <= float64(e.now.Unix())-1 {
		return "", "exp missing, not a number or past"
	}
	return sub, ""
}

// scanClaims decodes a payload object with encoding/json's token reader,
// keeping both the first and the last value of each name, and reports the
// first name that repeats (which may be "").
func scanClaims(payload []byte) (first, last map[string]any, dup string, repeated bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, "", false, errNotObject
	}
	first, last = map[string]any{}, map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, "", false, err
		}
		name, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, "", false, err
		}
		if _, seen := first[name]; !seen {
			first[name] = v
		} else if !repeated {
			dup, repeated = name, true
		}
		last[name] = v
	}
	return first, last, dup, repeated, nil
}

var errNotObject = errors.New("not a JSON object")

// namesRepeatedByDecoder is FuzzRepeatedName's reference: encoding/json's
// token reader over the top-level names, each value kept raw. Unlike
// scanClaims it does not decode values, so a valid object whose number
// does not fit a float64 ({"n":1e400}) still counts as an object here, as
// it does for the scanner under test.
func namesRepeatedByDecoder(b []byte) (dup string, repeated bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false, errNotObject
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false, err
		}
		if seen[name] && !repeated {
			dup, repeated = name, true
		}
		seen[name] = true
	}
	return dup, repeated, nil
}

// FuzzCookieValue: CookieValue never panics and only ever returns a piece
// of the header it was given.
func FuzzCookieValue(f *testing.F) {
	for _, s := range [][2]string{
		{"a=1; b=2", "b"}, {`a="quoted"`, "a"}, {"gm_token=x.y.z; gm_device=d-1", "gm_token"},
		{"ab=1", "a"}, {"", "a"}, {"a", "a"}, {"=v", ""}, {`a="`, "a"}, {"a=1;;;a=2", "a"}, {"\xff=\xfe", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, name string) {
		v := CookieValue(header, name)
		if v != "" && !strings.Contains(header, v) {
			t.Fatalf("CookieValue(%q, %q) = %q, not part of the header", header, name, v)
		}
		if v != CookieValue(header, name) {
			t.Fatal("not deterministic")
		}
	})
}

// FuzzFromRequest feeds arbitrary Authorization and Cookie header values.
// A subject comes only with claims, no problem, and a token (the bearer
// token, else the token cookie) that passes the independent check; the
// device id is a piece of the Cookie header.
func FuzzFromRequest(f *testing.F) {
	e := newFuzzEnv(f)
	seeds := e.seeds(f)
	f.Add("Bearer "+seeds[0], "")
	f.Add("bearer   "+seeds[2]+"  ", "gm_device=d-1")
	f.Add("", "a=1; gm_token="+seeds[1]+"; gm_device=d-9")
	f.Add("Bearer "+seeds[3], "gm_token="+seeds[0])
	f.Add("Basic YWxpY2U6cHc=", `gm_token="`+seeds[8]+`"`)
	f.Add("Bearer", "gm_token=; gm_device=")
	f.Fuzz(func(t *testing.T, authorization, cookie string) {
		c := e.plain.FromRequest(authorization, cookie)
		if c.DeviceID != "" && !strings.Contains(cookie, c.DeviceID) {
			t.Fatalf("device %q is not part of the cookie header", c.DeviceID)
		}
		if c.Subject == "" {
			if c.Claims != nil {
				t.Fatal("claims without a subject")
			}
			return
		}
		if c.Problem != "" || c.Claims == nil {
			t.Fatalf("subject with problem %q / claims %v", c.Problem, c.Claims)
		}
		token := bearer(authorization)
		if token == "" {
			token = CookieValue(cookie, "gm_token")
		}
		if sub, why := e.independentlyVerified(token); why != "" || sub != c.Subject {
			t.Fatalf("subject %q from %q: %s (names %q)", c.Subject, token, why, sub)
		}
	})
}

// FuzzRepeatedName checks the scanner behind the duplicate-claim check
// against encoding/json's token reader: on any valid JSON it must find the
// same first repeated top-level name (after unescaping and UTF-8
// replacement, as the decoder sees names), and refuse anything that is
// not an object. On invalid JSON it must only not panic.
func FuzzRepeatedName(f *testing.F) {
	for _, s := range []string{
		`{"sub":"bob","sub":"alice"}`, `{"sub":"bob","s\u0075b":"alice"}`, `{"a":{"a":1,"a":2},"b":[1,{"b":2}]}`,
		`{}`, ` { } `, `[]`, `"x"`, `{"a":"\"}","a":1}`, "{\"\xff\":1,\"\xfe\":2}", `{"a":1,}`, `{"a"}`, `{"a":1 "b":2}`,
		`{"\ud800":1,"\ufffd":2}`, `{"a":-1.5e3,"b":true,"c":null,"a":false}`, `{"n":1e400}`, `{"n":1e400,"n":0}`,
	} {
		f.Add([]byte(s))
	}
	many := []byte(`{`)
	for i := 0; i < 40; i++ {
		many = append(many, []byte(`"k`+strconv.Itoa(i)+`":0,`)...)
	}
	f.Add(append(many, []byte(`"k3":1}`)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, repeated, err := repeatedName(b)
		if !json.Valid(b) {
			return
		}
		dup, refRepeated, refErr := namesRepeatedByDecoder(b)
		switch {
		case refErr != nil:
			if err == nil {
				t.Fatalf("%q: accepted what is not an object", b)
			}
		case err != nil:
			t.Fatalf("%q: %v", b, err)
		case repeated != refRepeated || name != dup:
			t.Fatalf("%q: repeated %v %q, encoding/json sees %v %q", b, repeated, name, refRepeated, dup)
		}
	})
}
