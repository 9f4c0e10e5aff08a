package identity

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestHostileTokens covers tokens an attacker or a careless issuer can
// craft beyond forged signatures: repeated claims, headers that point at
// keys elsewhere or demand extensions, claims of the wrong type. Each is
// anonymous with a named reason; the few that are harmless verify.
func TestHostileTokens(t *testing.T) {
	k := sharedKeys(t)
	now := t0
	t.Run("keys from files", func(t *testing.T) { hostileTokens(t, k, k.verifier(t, k.identity(), &now)) })
	// The same tokens against the RS256, ES256 and EdDSA keys fetched from
	// an issuer's key set over HTTP (HMAC keys never come from one).
	t.Run("keys fetched", func(t *testing.T) { hostileTokens(t, k, fetchedVerifier(t, k, &now)) })
}

func hostileTokens(t *testing.T, k *keys, v *Verifier) {
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	const iss = `"iss":"https://id.example","aud":"shop"`
	hs := func(header, payload string) string { return signRaw(t, jwt.SigningMethodHS256, header, payload, k.hs) }
	body := `{"sub":"alice","exp":` + exp + `,` + iss + `}`

	attacker := newFuzzEnv(t).rs // a key the verifier does not know
	srv, fetched := attackerKeyServer(t, attacker)
	embedded := `{"kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(attacker.N.Bytes()) + `","e":"AQAB"}`

	tests := []struct {
		name, token, problem string
	}{
		// Repeated claims: Go keeps the last, other parsers the first.
		{"duplicate sub", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"bob","exp":`+exp+`,`+iss+`,"sub":"alice"}`), "duplicate-claim"},
		{"duplicate sub, escaped name", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"bob","s\u0075b":"alice","exp":`+exp+`,`+iss+`}`), "duplicate-claim"},
		{"duplicate exp, first expired", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"alice","exp":1,"exp":`+exp+`,`+iss+`}`), "duplicate-claim"},
		{"duplicate empty name", hs(`{"alg":"HS256","kid":"hs"}`, `{"":1,"sub":"alice","":2,"exp":`+exp+`,`+iss+`}`), "duplicate-claim"},
		{"duplicate private claim", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"alice","tier":"free","tier":"beta","exp":`+exp+`,`+iss+`}`), "duplicate-claim"},
		{"repeated name inside a nested object is not a claim", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"alice","ctx":{"a":1,"a":2},"exp":`+exp+`,`+iss+`}`), ""},
		{"same value under two names", hs(`{"alg":"HS256","kid":"hs"}`, `{"sub":"alice","uid":"alice","exp":`+exp+`,`+iss+`}`), ""},

		// kid naming a key of another algorithm.
		{"RS256 token, kid of the HS256 key", sign(t, jwt.SigningMethodRS256, "hs", claims("alice", t0.Add(time.Hour)), k.rs), "algorithm"},
		{"ES256 token, kid of the RS256 key", sign(t, jwt.SigningMethodES256, "rs", claims("alice", t0.Add(time.Hour)), k.es), "algorithm"},
		{"EdDSA token, kid of the ES256 key", sign(t, jwt.SigningMethodEdDSA, "es", claims("alice", t0.Add(time.Hour)), k.ed), "algorithm"},
		{"HS256 token, kid of the EdDSA key", sign(t, jwt.SigningMethodHS256, "ed", claims("alice", t0.Add(time.Hour)), k.hs), "algorithm"},
		{"kid is a number", hs(`{"alg":"HS256","kid":7}`, body), "malformed"},
		{"kid is null", hs(`{"alg":"HS256","kid":null}`, body), "malformed"},
		{"empty kid is no kid", hs(`{"alg":"HS256","kid":""}`, body), ""},

		// crit: graymesh understands no extension, so any crit is refused.
		{"crit naming a claim", hs(`{"alg":"HS256","kid":"hs","crit":["exp"]}`, body), "critical-header"},
		{"crit naming an extension", hs(`{"alg":"HS256","kid":"hs","crit":["b64"],"b64":false}`, body), "critical-header"},
		{"crit empty", hs(`{"alg":"HS256","kid":"hs","crit":[]}`, body), "critical-header"},

		// Keys elsewhere: jku, x5u, jwk, x5c are ignored, never fetched.
		{"jku on a valid token is ignored", hs(`{"alg":"HS256","kid":"hs","jku":"`+srv.URL+`"}`, body), ""},
		{"x5u on a valid token is ignored", hs(`{"alg":"HS256","kid":"hs","x5u":"`+srv.URL+`"}`, body), ""},
		{"jku to the attacker's key set", signRaw(t, jwt.SigningMethodRS256, `{"alg":"RS256","kid":"attacker","jku":"`+srv.URL+`"}`, body, attacker), "unknown-kid"},
		{"x5u to the attacker's certificate", signRaw(t, jwt.SigningMethodRS256, `{"alg":"RS256","x5u":"`+srv.URL+`"}`, body, attacker), "signature"},
		{"embedded jwk of the attacker", signRaw(t, jwt.SigningMethodRS256, `{"alg":"RS256","jwk":`+embedded+`}`, body, attacker), "signature"},
		{"x5c of the attacker", signRaw(t, jwt.SigningMethodRS256, `{"alg":"RS256","kid":"rs","x5c":["MIIB"]}`, body, attacker), "signature"},

		// Claims of the wrong type.
		{"numeric sub", hs(`{"alg":"HS256"}`, `{"sub":42,"exp":`+exp+`,`+iss+`}`), "claim-type"},
		{"boolean sub", hs(`{"alg":"HS256"}`, `{"sub":true,"exp":`+exp+`,`+iss+`}`), "claim-type"},
		{"array sub", hs(`{"alg":"HS256"}`, `{"sub":["alice"],"exp":`+exp+`,`+iss+`}`), "claim-type"},
		{"null sub", hs(`{"alg":"HS256"}`, `{"sub":null,"exp":`+exp+`,`+iss+`}`), "no-subject"},
		{"empty sub", hs(`{"alg":"HS256"}`, `{"sub":"","exp":`+exp+`,`+iss+`}`), "no-subject"},
		{"exp as a string", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":"`+exp+`",`+iss+`}`), "claim-type"},
		{"exp as a date string", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":"2099-01-01T00:00:00Z",`+iss+`}`), "claim-type"},
		{"exp as a boolean", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":true,`+iss+`}`), "claim-type"},
		{"exp zero", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":0,`+iss+`}`), "missing-claim"},
		{"exp negative", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":-1,`+iss+`}`), "expired"},
		{"nbf as a string", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"nbf":"0",`+iss+`}`), "claim-type"},
		// The JWT library reads an aud that is neither a string nor an
		// array as absent; with an audience configured that is refused.
		{"aud as a number", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"iss":"https://id.example","aud":7}`), "missing-claim"},
		{"aud array with a number", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"iss":"https://id.example","aud":["shop",7]}`), "claim-type"},
		{"iss as a number", hs(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"iss":7,"aud":"shop"}`), "claim-type"},
		{"payload an array", hs(`{"alg":"HS256"}`, `["sub","alice"]`), "malformed"},

		// Headers that do not name a usable algorithm.
		{"no alg", hs(`{"kid":"hs"}`, body), "unverifiable"},
		{"alg not a string", hs(`{"alg":256}`, body), "unverifiable"},
		{"alg None", hs(`{"alg":"None"}`, body), "unverifiable"},
		{"header not an object", hs(`"HS256"`, body), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refusedAsAnonymous(t, v, tt.token, tt.problem) })
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the key server was fetched %d times", n)
	}
}

// attackerKeyServer serves a key set holding the attacker's key and counts
// its requests: graymesh must never fetch jku or x5u.
func attackerKeyServer(t *testing.T, attacker *rsa.PrivateKey) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var fetched atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		b64 := base64.RawURLEncoding
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "attacker", "alg": "RS256",
			"n": b64.EncodeToString(attacker.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(attacker.E)).Bytes()),
		}}})
	}))
	t.Cleanup(srv.Close)
	return srv, &fetched
}

// refusedAsAnonymous checks that token is refused for problem (or, for
// "", verified as alice), and that a request carrying it is anonymous.
func refusedAsAnonymous(t *testing.T, v *Verifier, token, problem string) {
	t.Helper()
	id, err := v.Verify(token)
	if got := Problem(err); got != problem {
		t.Fatalf("problem %q (err %v), want %q", got, err, problem)
	}
	if problem == "" {
		if id.Subject != "alice" {
			t.Fatalf("subject %q", id.Subject)
		}
		return
	}
	c := v.FromRequest("Bearer "+token, "")
	if c.Subject != "" || c.Claims != nil || c.Problem != problem {
		t.Fatalf("caller %+v, want anonymous with problem %q", c, problem)
	}
}

// TestDuplicateClaimNeverCached: a token refused for a repeated claim is
// refused again, with the cache on; the check runs before the cache is
// filled.
func TestDuplicateClaimNeverCached(t *testing.T) {
	k := sharedKeys(t)
	now := t0
	v := k.verifier(t, k.identity(), &now)
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	tok := signRaw(t, jwt.SigningMethodHS256, `{"alg":"HS256"}`, `{"sub":"bob","sub":"alice","exp":`+exp+`,"iss":"https://id.example","aud":"shop"}`, k.hs)
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(tok); Problem(err) != "duplicate-claim" {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	if n := v.cache.len(); n != 0 {
		t.Fatalf("cache holds %d entries", n)
	}
}
