package extproc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// hostileConfig admits to gray only the whitelisted subject alice. The
// fuzz targets never hold a token for alice, so no request they build may
// reach gray: not by spoofed headers, forged lanes or memberships, nor
// anything else.
const hostileConfig = `
identity:
  device_cookie: gm_device
  jwt:
    cookie: gm_token
    algorithms: [HS256]
    cache_size: 64
    keys: [{kid: k, alg: HS256, secret: "` + testSecret + `"}]
lane: {key: "mesh-key-0123456789abcdef-0123456789"}
membership: {enabled: true}
releases:
  - name: shop-v2
    env: gray
    whitelist: [alice]
services:
  - name: frontend
    sidecar: {inbound_port: 10001, outbound_port: 15001, edge: true}
    environments: {stable: ["127.0.0.1:9201"], gray: ["127.0.0.1:9202"]}
`

func hostilePolicy(tb testing.TB) *gray.Policy { return compile(tb, hostileConfig) }

// forgedAlice is a token for alice signed with the wrong secret: no
// mutation of it verifies.
func forgedAlice(tb testing.TB) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("not-the-secret-not-the-secret-00"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// hostileHeaders builds the request Envoy would hand graymesh: header names
// lower-cased as Envoy does; values as given, in raw_value or (for every
// other header) in value; x-gray-env repeated; an arbitrary extra header.
func hostileHeaders(name, value, authorization, cookie, laneHeader string, repeat uint8) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	add := func(k, v string) {
		h := &corev3.HeaderValue{Key: k}
		if len(hm.Headers)%2 == 0 {
			h.RawValue = []byte(v)
		} else {
			h.Value = v
		}
		hm.Headers = append(hm.Headers, h)
	}
	add(":path", "/")
	for i := 0; i < int(repeat%6); i++ {
		add(wire.HeaderEnv, []string{"gray", value, "stable", " gray"}[i%4])
	}
	if authorization != "" {
		add("authorization", authorization)
	}
	if cookie != "" {
		add("cookie", cookie)
		add("cookie", "gm_device=d-"+value)
	}
	if laneHeader != "" {
		add(wire.HeaderLane, laneHeader)
		add(wire.HeaderLane, value)
	}
	add(strings.ToLower(name), value)
	add("x-graymesh-member", value)
	add(wire.HeaderRelease, value)
	return hm
}

func addHostileSeeds(f *testing.F) {
	p := hostilePolicy(f)
	bob := token(f, "bob")
	forged := forgedAlice(f)
	stableLane := p.Lanes.Sign(config.Stable, "", p.Engine.Version(), time.Now())
	genuine := strings.Split(p.Lanes.Sign("gray", "shop-v2", p.Engine.Version(), time.Now()), ".")
	// A genuine gray lane's header and claims under a stable lane's
	// signature.
	forgedLane := genuine[0] + "." + genuine[1] + "." + strings.Split(stableLane, ".")[2]
	huge := strings.Repeat("a", 64<<10)
	for _, s := range []struct {
		name, value, auth, cookie, laneHeader string
		repeat                                uint8
		source                                string
		inner                                 bool
	}{
		{"x-gray-env", "gray", "", "", "", 3, "", false},
		{"x-gray-lane", "gray", "Bearer " + forged, "gm_token=" + forged, forgedLane, 2, "10.0.0.1:5555", false},
		{"x-gray-env", "gray", "Bearer " + bob, "gm_member=m1:shop-v2:gray:v:1:9999999999:forged", forgedLane, 1, "", false},
		{"x-region", "\xff\xfe\xfd", "Bearer " + forged + "\xff", "gm_token=\xff; gm_device=\xfe", "\xff=\xfe", 5, "\xff", false},
		{"x-big", huge, "Bearer " + huge, "gm_token=" + huge, huge, 4, "", false},
		{"x-gray-env", "gray", "", "", stableLane, 1, "", true},
		{"baggage", "graymesh-lane=" + stableLane, "Bearer " + bob, "", forgedLane + " " + stableLane, 2, "", true},
		{"X-Gray-Env", "GRAY", "bearer  " + bob, "gm_token=\"" + forged + "\"", " " + forgedLane, 0, "[::1]:1", false},
	} {
		f.Add(s.name, s.value, s.auth, s.cookie, s.laneHeader, s.repeat, s.source, s.inner)
	}
}

// FuzzExtract: Extract never panics, whatever the headers; it keeps the
// last Authorization and membership header, every Cookie value, the first
// lane header (as Envoy's jwt_authn reads it), and only the headers a
// matcher reads.
func FuzzExtract(f *testing.F) {
	p := testPolicy(f) // has a header matcher on x-region
	addHostileSeeds(f)
	f.Fuzz(func(t *testing.T, name, value, authorization, cookie, laneHeader string, repeat uint8, source string, inner bool) {
		hm := hostileHeaders(name, value, authorization, cookie, laneHeader, repeat)
		r := Extract(p, hm, requestHeaders(hm, source).Attributes)
		first := map[string]string{}
		for _, h := range hm.Headers {
			k, v := h.GetKey(), value0(h)
			switch k {
			case "cookie":
				if !strings.Contains(r.Cookie, v) {
					t.Fatalf("cookie %q lost", v)
				}
			case wire.HeaderLane:
				if _, seen := first[k]; !seen && r.Lane != v {
					t.Fatalf("lane %q, want the first value %q", r.Lane, v)
				}
			}
			if _, seen := first[k]; !seen {
				first[k] = v
			}
		}
		for k, v := range r.Headers {
			if !p.Engine.ReadsHeader(k) || first[k] != v {
				t.Fatalf("header %q = %q extracted; matchers read it: %v, first value %q", k, v, p.Engine.ReadsHeader(k), first[k])
			}
		}
		if r.Membership != value {
			t.Fatalf("membership %q, want the last value %q", r.Membership, value)
		}
	})
}

// value0 is value() without its fallback quirk: what the test put in.
func value0(h *corev3.HeaderValue) string {
	if h.RawValue != nil {
		return string(h.RawValue)
	}
	return h.Value
}

// FuzzProcessHeaders runs hostile request headers through the whole
// request-headers path (Extract, Decide at the edge or an inner hop, membership, lane,
// Response) at the edge and at an inner hop. Without a token for alice,
// x-gray-env is never set to anything but stable, no client x-gray-*
// header survives, no membership is handed out, the lane passed on is
// none an inner hop would follow into gray, and the response always
// marshals.
func FuzzProcessHeaders(f *testing.F) {
	p := hostilePolicy(f)
	s := New(p, slog.New(slog.DiscardHandler), nil)
	addHostileSeeds(f)
	ours := map[string]bool{wire.HeaderEnv: true, wire.HeaderRelease: true, wire.HeaderReason: true, wire.HeaderVersion: true, wire.HeaderFallback: true, wire.HeaderLane: true, wire.HeaderLaneProblem: true}
	f.Fuzz(func(t *testing.T, name, value, authorization, cookie, laneHeader string, repeat uint8, source string, inner bool) {
		hm := hostileHeaders(name, value, authorization, cookie, laneHeader, repeat)
		st := &streamState{hop: gray.Hop{Inner: inner, Service: "frontend"}}
		resp, err := s.answer(context.Background(), st, requestHeaders(hm, source))
		if err != nil {
			t.Fatal(err)
		}
		if st.responseHeaders != nil || resp.ModeOverride != nil {
			t.Fatalf("membership handed out: %v", st.responseHeaders)
		}
		mut := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
		set := map[string]string{}
		for _, o := range mut.GetSetHeaders() {
			k := o.GetHeader().GetKey()
			if !ours[k] {
				t.Fatalf("sets header %q", k)
			}
			set[k] = string(o.GetHeader().GetRawValue())
		}
		if env, ok := set[wire.HeaderEnv]; ok && env != config.Stable || inner && !ok && set[wire.HeaderReason] != wire.ReasonLaneMissing {
			t.Fatalf("x-gray-env %q (set %v) for a request without alice's token", env, ok)
		}
		removed := map[string]bool{}
		for _, k := range mut.GetRemoveHeaders() {
			removed[k] = true
		}
		allValid := true
		for _, h := range hm.Headers {
			k := h.GetKey()
			allValid = allValid && utf8.ValidString(k)
			if strings.HasPrefix(k, wire.HeaderPrefix) && !removed[k] {
				if _, overwritten := set[k]; !overwritten {
					t.Fatalf("client header %q survives", k)
				}
			}
		}
		passedOn, touched := set[wire.HeaderLane]
		if !touched && !removed[wire.HeaderLane] {
			if v := values(hm, wire.HeaderLane); len(v) > 0 {
				passedOn = v[0]
			}
		}
		if d := p.Decide(gray.Request{Hop: gray.Hop{Inner: true}, Lane: passedOn, Now: time.Now()}); d.Env != config.Stable && d.Env != "" {
			t.Fatalf("lane %q passed on leads the next hop to %q", passedOn, d.Env)
		}
		// Envoy names headers in RFC 9110 token characters, so a client's
		// header name is always valid UTF-8; then the answer must marshal.
		if _, err := proto.Marshal(resp); err != nil && allValid {
			t.Fatalf("response does not marshal: %v", err)
		}
	})
}

func values(hm *corev3.HeaderMap, name string) []string {
	var out []string
	for _, h := range hm.Headers {
		if h.GetKey() == name {
			out = append(out, value0(h))
		}
	}
	return out
}
