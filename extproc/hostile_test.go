package extproc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// hs256 signs header and payload JSON as written with the test policy's
// secret, so the token is genuine except for what the JSON says.
func hs256(header, payload string) string {
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

// TestHostileTokensNeverGray: tokens naming the whitelisted alice that
// must not verify reach graymesh through the ext_proc stream with a
// spoofed x-gray-env and, in the cookie, alice's genuine token (the
// Authorization header wins, so it does not rescue a bad bearer token).
// Each is anonymous (invalid-token, x-gray-env not set, the spoofed header
// removed) and the caller's problem names why.
func TestHostileTokensNeverGray(t *testing.T) {
	p := testPolicy(t)
	client := dial(t, New(p, slog.New(slog.DiscardHandler), nil))
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	good := token(t, "alice")
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, problem string
	}{
		{"alg none", none, "algorithm"},
		{"alg none, no signature segment", strings.TrimSuffix(none, "."), "malformed"},
		{"HS512, not an allowed algorithm", hs256(`{"alg":"HS512"}`, `{"sub":"alice","exp":`+exp+`}`), "algorithm"},
		{"RS256 signed with the HMAC secret", hs256(`{"alg":"RS256"}`, `{"sub":"alice","exp":`+exp+`}`), "algorithm"},
		{"forged signature", good[:strings.LastIndexByte(good, '.')+1] + "AAAA" + good[strings.LastIndexByte(good, '.')+5:], "signature"},
		{"unknown kid", hs256(`{"alg":"HS256","kid":"other"}`, `{"sub":"alice","exp":`+exp+`}`), "unknown-kid"},
		{"expired", hs256(`{"alg":"HS256"}`, `{"sub":"alice","exp":1}`), "expired"},
		{"not yet valid", hs256(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"nbf":`+exp+`}`), "not-yet-valid"},
		{"no exp", hs256(`{"alg":"HS256"}`, `{"sub":"alice"}`), "missing-claim"},
		{"duplicate sub, alice last", hs256(`{"alg":"HS256"}`, `{"sub":"bob","exp":`+exp+`,"sub":"alice"}`), "duplicate-claim"},
		{"duplicate sub, alice first", hs256(`{"alg":"HS256"}`, `{"sub":"alice","exp":`+exp+`,"sub":"bob"}`), "duplicate-claim"},
		{"crit header", hs256(`{"alg":"HS256","crit":["exp"]}`, `{"sub":"alice","exp":`+exp+`}`), "critical-header"},
		{"jku header to a key set elsewhere", hs256(`{"alg":"HS256","kid":"evil","jku":"http://127.0.0.1:1/jwks"}`, `{"sub":"alice","exp":`+exp+`}`), "unknown-kid"},
		{"kid a number", hs256(`{"alg":"HS256","kid":1}`, `{"sub":"alice","exp":`+exp+`}`), "malformed"},
		{"exp a string", hs256(`{"alg":"HS256"}`, `{"sub":"alice","exp":"`+exp+`"}`), "claim-type"},
		{"sub an array", hs256(`{"alg":"HS256"}`, `{"sub":["alice"],"exp":`+exp+`}`), "claim-type"},
		{"oversized", good + strings.Repeat("A", 8<<10), "oversized"},
		{"truncated", good[:len(good)/2], "malformed"},
		{"non-base64", "@@@." + strings.SplitN(good, ".", 2)[1], "malformed"},
		{"invalid UTF-8", "\xff\xfe." + good, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.Decide(gray.Request{Authorization: "Bearer " + tt.token, Now: time.Now()})
			d, caller := o.Decision, o.Caller
			if d.Env != "" || d.Reason != gray.ReasonInvalidToken || caller.Subject != "" || caller.Problem != tt.problem {
				t.Fatalf("decision %+v caller %+v, want anonymous, invalid-token, problem %q", d, caller, tt.problem)
			}
			stream, err := client.Process(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			in := headers("authorization", "Bearer "+tt.token, wire.HeaderEnv, "gray", "cookie", "gm_token="+good)
			if err := stream.Send(requestHeaders(in, "")); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			set, removed := mutation(t, resp)
			if _, ok := set[wire.HeaderEnv]; ok || set[wire.HeaderReason] != string(gray.ReasonInvalidToken) {
				t.Fatalf("set %v", set)
			}
			if len(removed) != 1 || removed[0] != wire.HeaderEnv {
				t.Fatalf("removed %v, want the spoofed %s", removed, wire.HeaderEnv)
			}
		})
	}
}
