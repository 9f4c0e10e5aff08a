package lanequeue

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/laneprop"
)

const meshKey = "lanequeue-test-mesh-key-0123456789abcdef"

// graymeshState serves a lane state as graymesh's GET /v1/lanes does;
// set changes what it answers next.
type graymeshState struct {
	mu  sync.Mutex
	doc map[string]any
}

func (g *graymeshState) set(doc map[string]any) { g.mu.Lock(); g.doc = doc; g.mu.Unlock() }

func (g *graymeshState) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = json.NewEncoder(w).Encode(g.doc)
}

func signer(t *testing.T, key string) *lane.Signer {
	t.Helper()
	s, err := lane.NewSigner([]byte(key), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFollowerDecidesAsASidecar: a consumer's decision from a message's
// lane is an inner hop's — the lane's environment; stable without a lane,
// with a forged or expired one, and for a killed release (in Kubernetes
// mode, only lanes issued up to the kill's version) — and a refresh
// brings a kill and a key rotation.
func TestFollowerDecidesAsASidecar(t *testing.T) {
	s, other := signer(t, meshKey), signer(t, "another-mesh-key-0123456789abcdef-01")
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{}})
	srv := httptest.NewServer(g)
	defer srv.Close()
	ctx := context.Background()
	f, err := NewFollower(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	gray := s.Sign("gray", "shop-v2", "7", now)
	tests := []struct {
		name, token, env, reason string
	}{
		{"gray lane", gray, "gray", wire.ReasonLane},
		{"no lane", "", Stable, wire.ReasonLaneMissing},
		{"forged", other.Sign("gray", "shop-v2", "7", now), Stable, wire.ReasonLaneRefused},
		{"garbage", "x.y.z", Stable, wire.ReasonLaneRefused},
	}
	for _, tt := range tests {
		if d := f.Decide(tt.token, now); d.Env != tt.env || d.Reason != tt.reason {
			t.Errorf("%s: %+v, want %s %s", tt.name, d, tt.env, tt.reason)
		}
	}
	if d := f.Decide(gray, now.Add(time.Hour)); d.Env != Stable || d.Reason != wire.ReasonLaneRefused {
		t.Errorf("expired: %+v", d)
	}
	if d := f.Decide(s.SignStressLane("gray", "shop-v2", "7", now), now); d.Env != "gray" || !d.Stress {
		t.Errorf("stress lane: %+v", d)
	}

	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"}})
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.Decide(gray, now); d.Env != Stable || d.Reason != wire.ReasonKilled || f.ConfigVersion() != "8" {
		t.Errorf("killed: %+v (version %s)", d, f.ConfigVersion())
	}
	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"}, "killed_through": "8"})
	must(t, f.Refresh(ctx))
	if d := f.Decide(s.Sign("gray", "shop-v2", "9", now), now); d.Env != "gray" {
		t.Errorf("a lane issued after the kill was lifted elsewhere: %+v", d)
	}
	if d := f.Decide(gray, now); d.Env != Stable {
		t.Errorf("a lane issued before the kill: %+v", d)
	}

	rotated, err := lane.NewSigner([]byte("rotated-mesh-key-0123456789abcdef-012"), time.Minute, []byte(meshKey))
	must(t, err)
	g.set(map[string]any{"config_version": "9", "keys": json.RawMessage(rotated.JWKS()), "killed": []string{}})
	must(t, f.Refresh(ctx))
	for _, tok := range []string{gray, rotated.Sign("gray", "shop-v2", "9", now)} {
		if d := f.Decide(tok, now); d.Env != "gray" {
			t.Errorf("after the rotation: %+v", d)
		}
	}

	g.set(map[string]any{"config_version": "10", "keys": json.RawMessage(`{"keys":[]}`)})
	if err := f.Refresh(ctx); err == nil {
		t.Error("a broken state was taken")
	}
	if f.ConfigVersion() != "9" {
		t.Errorf("a broken state replaced the one in force: %s", f.ConfigVersion())
	}
	if _, err := NewFollower(ctx, srv.URL); err == nil {
		t.Error("a consumer started on a broken lane state")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestProcesses: gray's messages go to gray's consumer while it is live
// and to stable's when none is; stable's only to stable's.
func TestProcesses(t *testing.T) {
	grayLive := func(live bool) func(string) bool { return func(env string) bool { return env == Stable || live } }
	gray, stable := Decision{Env: "gray"}, Decision{Env: Stable}
	for _, tt := range []struct {
		name     string
		consumer string
		d        Decision
		live     bool
		want     bool
	}{
		{"gray message, gray consumer", "gray", gray, true, true},
		{"gray message, stable consumer, gray live", Stable, gray, true, false},
		{"gray message, stable consumer, gray gone", Stable, gray, false, true},
		{"stable message, stable consumer", Stable, stable, true, true},
		{"stable message, gray consumer", "gray", stable, true, false},
		{"canary message, gray consumer", "gray", Decision{Env: "canary"}, true, false},
	} {
		if got := Processes(tt.consumer, tt.d, grayLive(tt.live)); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
}

type headerMap map[string]string

func (h headerMap) Set(k, v string) { h[k] = v }

// TestInject: the lane of the request's context goes into the message;
// none without one.
func TestInject(t *testing.T) {
	h := headerMap{}
	Inject(laneprop.ContextWith(context.Background(), "a.b.c"), h)
	if h[Header] != "a.b.c" {
		t.Fatalf("headers %v", h)
	}
	h = headerMap{}
	Inject(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("headers %v without a lane", h)
	}
}

// benchState is a lane state with one gray lane to decide.
func benchState(b *testing.B) (*state, string, time.Time) {
	s, err := lane.NewSigner([]byte(meshKey), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	st, err := parseState([]byte(`{"config_version":"7","killed":["other"],"keys":` + s.JWKS() + `}`))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	return st, s.Sign("gray", "shop-v2", "7", now), now
}

// BenchmarkFollowerDecide is the consumer filter's cost per message for a
// lane seen before: the common case, one lane per environment, release
// and version per window.
func BenchmarkFollowerDecide(b *testing.B) {
	st, tok, now := benchState(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := st.decide(tok, now); d.Env != "gray" {
			b.Fatal(d)
		}
	}
}

// BenchmarkFollowerVerifyUncached is what each message would cost without
// the cache: the lane's Ed25519 signature verified afresh.
func BenchmarkFollowerVerifyUncached(b *testing.B) {
	st, tok, now := benchState(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.keys.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCachedLaneExpires: a cached lane is not honoured past its expiry.
func TestCachedLaneExpires(t *testing.T) {
	s := signer(t, meshKey)
	st, err := parseState([]byte(`{"config_version":"7","killed":[],"keys":` + s.JWKS() + `}`))
	must(t, err)
	now := time.Now()
	tok := s.Sign("gray", "shop-v2", "7", now)
	if d := st.decide(tok, now); d.Env != "gray" {
		t.Fatal(d)
	}
	if d := st.decide(tok, now.Add(time.Hour)); d.Env != Stable || d.Reason != wire.ReasonLaneRefused {
		t.Fatalf("a cached lane past its expiry: %+v", d)
	}
}

// TestUnchangedStateKeepsItsCache: a refresh that reads the same answer
// keeps the state in force, with the lanes it verified.
func TestUnchangedStateKeepsItsCache(t *testing.T) {
	s := signer(t, meshKey)
	g := &graymeshState{}
	g.set(map[string]any{"config_version": "7", "keys": json.RawMessage(s.JWKS()), "killed": []string{}})
	srv := httptest.NewServer(g)
	defer srv.Close()
	f, err := NewFollower(context.Background(), srv.URL)
	must(t, err)
	before := f.state.Load()
	must(t, f.Refresh(context.Background()))
	if f.state.Load() != before || f.Refreshes.Load() != 2 {
		t.Fatalf("an unchanged answer replaced the state (refreshes %d)", f.Refreshes.Load())
	}
	g.set(map[string]any{"config_version": "8", "keys": json.RawMessage(s.JWKS()), "killed": []string{"shop-v2"}})
	must(t, f.Refresh(context.Background()))
	if f.ConfigVersion() != "8" {
		t.Fatalf("a changed answer was not taken: %s", f.ConfigVersion())
	}
}
