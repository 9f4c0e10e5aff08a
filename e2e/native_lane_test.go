package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// innerPorts are the example's inbound ports of the inner sidecars.
var innerPorts = map[string]int{"orders": 10002, "inventory": 10003, "pricing": 10004}

// inner sends one request straight to an inner sidecar's inbound listener,
// as another service of the mesh (or an attacker inside it) would, on a
// fresh connection: a listener Envoy replaced after a key change drains
// its old connections slowly.
func (m *fourHop) inner(service string, headers map[string]string) (chainReply, error) {
	return sendFrom(meshAddress, m.ports[innerPorts[service]], "", headers)
}

// meshAddress is where the example's sidecars and services connect from.
const meshAddress = "127.0.0.1"

// sendFrom sends one request to a sidecar listener on 127.0.0.1:port from
// the local address from (any of 127.0.0.0/8), on a fresh connection,
// with Host host when set.
func sendFrom(from string, port int, host string, headers map[string]string) (chainReply, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if err != nil {
		return chainReply{}, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	resp, err := client.Do(req)
	if err != nil {
		return chainReply{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r chainReply
	if err := json.Unmarshal(body, &r); err != nil {
		return chainReply{}, fmt.Errorf("%s: %w: %s", resp.Status, err, body)
	}
	return r, nil
}

// withLane is the header that carries lane.
func withLane(l string) map[string]string { return map[string]string{wire.HeaderLane: l} }

// servedFrom checks a chain that began at orders: where each hop was
// served and the reason orders' sidecar gave.
func servedFrom(r chainReply, hops, reason string) error {
	if got := strings.Join(r.hops(), " "); got != hops || r.Gray[wire.HeaderReason] != reason {
		return fmt.Errorf("chain %s (reason %q, orders saw %v), want %s (reason %q)", got, r.Gray[wire.HeaderReason], r.Gray, hops, reason)
	}
	return nil
}

const (
	grayFromOrders   = "orders:gray inventory:stable pricing:gray"
	stableFromOrders = "orders:stable inventory:stable pricing:stable"
)

// TestMeshInnerHopsVerifyLanesInEnvoy sends lanes straight to the inner
// sidecars, whose Envoys verify them without asking graymesh: forged,
// expired, altered and relocated lanes route stable and say why; a key
// rotation keeps lanes in flight; a kill, pushed as routes, stops lanes
// already travelling; with graymesh down the edge fails open to stable
// while inner hops keep routing lanes until they expire.
func TestMeshInnerHopsVerifyLanesInEnvoy(t *testing.T) {
	m := newFourHop(t)
	signer, err := lane.NewSigner([]byte(m.laneKey), time.Minute)
	must(t, err)
	t.Run("crafted lanes", func(t *testing.T) { craftedLanes(t, m, signer) })
	const rotated = "rotated-mesh-key-0123456789abcdef-0123456789"
	next, err := lane.NewSigner([]byte(rotated), time.Minute)
	must(t, err)
	t.Run("key rotation keeps lanes in flight", func(t *testing.T) { keyRotation(t, m, signer, next, rotated) })
	t.Run("kill stops travelling lanes", func(t *testing.T) { killStopsLanes(t, m, next) })
	t.Run("graymesh down", func(t *testing.T) { graymeshDown(t, m, rotated) })
}

func craftedLanes(t *testing.T, m *fourHop, signer *lane.Signer) {
	now := time.Now()
	genuine := signer.Sign("gray", "shop-v2", "7", now)
	parts := strings.Split(genuine, ".")
	other, err := lane.NewSigner([]byte("not-the-mesh-key-0123456789abcdef-0123"), time.Minute)
	must(t, err)
	forged := other.Sign("gray", "shop-v2", "7", now)
	shortLived, err := lane.NewSigner([]byte(m.laneKey), time.Second)
	must(t, err)
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	altered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"`+wire.LaneClaimEnv+`":"gray"`, `"`+wire.LaneClaimEnv+`":"grey"`, 1))) + "." + parts[2]
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{wire.LaneClaimEnv: "gray", "iss": wire.LaneIssuer, "exp": now.Add(time.Minute).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	must(t, err)
	aliceToken := m.token("alice", now.Add(time.Hour))
	// A lane names no key (Envoy tries every key of the set); one that
	// names a key the set lacks is refused before any signature check.
	unknownKid := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"not-in-the-set"}`)) + "." + parts[1] + "." + parts[2]
	marker, err := signer.SignStress("shop-v2", now, time.Hour)
	must(t, err)
	tests := []struct {
		name    string
		headers map[string]string
		hops    string
		reason  string
		// problem is a part of Envoy's message for a refused lane.
		problem string
	}{
		{"genuine", withLane(genuine), grayFromOrders, "lane", ""},
		{"no lane", nil, stableFromOrders, "lane-missing", ""},
		{"client sets x-gray-env", map[string]string{"x-gray-env": "gray", "x-gray-release": "shop-v2"}, stableFromOrders, "lane-missing", ""},
		{"signed with another key", withLane(forged), stableFromOrders, "lane-refused", "verification fail"},
		{"our lane with another key's signature", withLane(parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]), stableFromOrders, "lane-refused", "verification fail"},
		{"naming a kid the set lacks", withLane(unknownKid), stableFromOrders, "lane-refused", "kid"},
		{"a stress marker (our key, the stress issuer)", withLane(marker), stableFromOrders, "lane-refused", "issuer"},
		{"expired", withLane(shortLived.Sign("gray", "shop-v2", "7", now.Add(-10*time.Minute))), stableFromOrders, "lane-refused", "expired"},
		{"environment altered", withLane(altered), stableFromOrders, "lane-refused", "verification fail"},
		{"alg none", withLane(none), stableFromOrders, "lane-refused", "Jwt"},
		{"trailing junk", withLane(genuine + "x"), stableFromOrders, "lane-refused", "Jwt"},
		{"caller's identity token as the lane", withLane(aliceToken), stableFromOrders, "lane-refused", "Jwt"},
		{"relocated into baggage", map[string]string{"baggage": "graymesh-lane=" + genuine}, stableFromOrders, "lane-missing", ""},
		{"relocated into authorization", map[string]string{"Authorization": "Bearer " + genuine}, stableFromOrders, "lane-missing", ""},
		{"relocated into a cookie", map[string]string{"Cookie": "graymesh-lane=" + genuine}, stableFromOrders, "lane-missing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := m.inner("orders", tt.headers)
			must(t, err)
			must(t, servedFrom(r, tt.hops, tt.reason))
			if problem := r.Gray[wire.HeaderLaneProblem]; (tt.problem == "") != (problem == "") || !strings.Contains(problem, tt.problem) {
				t.Fatalf("lane problem %q, want one naming %q", problem, tt.problem)
			}
			if tt.reason == "lane-refused" {
				// The refused lane went no further: inventory was handed none.
				if next := r.Calls[0]; next.Gray[wire.HeaderReason] != "lane-missing" {
					t.Fatalf("inventory after a refused lane: %v", next.Gray)
				}
			}
			// No lane, no environment header: the service (and the
			// sidecar's span, graymesh.lane) is told of no lane.
			if env, ok := r.Gray[wire.HeaderEnv]; tt.reason == "lane-missing" && ok {
				t.Fatalf("no lane, yet orders was handed %s: %q", wire.HeaderEnv, env)
			}
			// The lane's version stays in the lane: no claim header
			// (xds laneConfig), so none reaches the service either.
			if _, version := r.Gray[wire.HeaderVersion]; tt.reason == "lane" && (r.Gray[wire.HeaderEnv] != "gray" || r.Gray[wire.HeaderRelease] != "shop-v2" || version) {
				t.Fatalf("claims to headers: %v", r.Gray)
			}
		})
	}
	// The trace says it too: the sidecar's span, from its route, without
	// graymesh.
	id := newTraceID()
	h := withLane(forged)
	h["traceparent"] = "00-" + id + "-" + id[:16] + "-01"
	_, err = m.inner("orders", h)
	must(t, err)
	spans := m.waitForSpans(id, "orders-sidecar inbound orders", "inventory-sidecar inbound inventory")
	m.expectTags(spans["orders-sidecar inbound orders"], map[string]string{
		wire.AttrVariant: "stable", wire.AttrReason: "lane-refused", wire.AttrLane: "stable",
		wire.AttrLaneProblem: "Jwt verification fails",
	})
	// Handed no lane, inventory's sidecar names none (it once said
	// graymesh.lane=stable).
	m.expectTags(spans["inventory-sidecar inbound inventory"], map[string]string{wire.AttrReason: wire.ReasonDefault, wire.AttrLaneProblem: "", wire.AttrLane: ""})
	m.assertOnlyTheEdgeAsksGraymesh(id)
}

// keyRotation rotates the mesh key in place: the new key signs, the old
// one is kept as a verify key, and a lane the old key signed still routes;
// once the old key is dropped its lanes are refused.
func keyRotation(t *testing.T, m *fourHop, old, next *lane.Signer, rotated string) {
	oldLane, newLane := old.Sign("gray", "shop-v2", "7", time.Now()), next.Sign("gray", "shop-v2", "7", time.Now())
	if r, err := m.inner("orders", withLane(newLane)); err != nil || servedFrom(r, stableFromOrders, "lane-refused") != nil {
		t.Fatalf("a lane of the next key before the rotation: %+v %v", r, err)
	}
	if res := m.editConfig(t, "  key: "+m.laneKey, "  key: "+rotated+"\n  verify_keys: ["+m.laneKey+"]"); res != "accepted" {
		t.Fatalf("rotation: %s %v", res, m.status(t)["last_reload"])
	}
	waitFor(t, "the new key at orders", 20*time.Second, func() error {
		r, err := m.inner("orders", withLane(newLane))
		if err != nil {
			return err
		}
		return servedFrom(r, grayFromOrders, "lane")
	})
	r, err := m.inner("orders", withLane(oldLane))
	must(t, err)
	must(t, servedFrom(r, grayFromOrders, "lane"))
	chain, err := m.chain(newTraceID(), bearer(m.token("alice", time.Now().Add(time.Hour))))
	must(t, err)
	if got := strings.Join(chain.hops(), " "); got != "frontend:gray "+grayFromOrders {
		t.Fatalf("alice after the rotation: %s", got)
	}
	if res := m.editConfig(t, "\n  verify_keys: ["+m.laneKey+"]", ""); res != "accepted" {
		t.Fatalf("dropping the old key: %s %v", res, m.status(t)["last_reload"])
	}
	waitFor(t, "orders to refuse the old key's lanes", 20*time.Second, func() error {
		r, err := m.inner("orders", withLane(oldLane))
		if err != nil {
			return err
		}
		return servedFrom(r, stableFromOrders, "lane-refused")
	})
	r, err = m.inner("orders", withLane(newLane))
	must(t, err)
	must(t, servedFrom(r, grayFromOrders, "lane"))
}

// killStopsLanes: a kill reaches lanes already travelling. Inner hops do
// not ask graymesh, so the kill is pushed to them as routes: the killed
// release's lanes go stable, say so, and go no further.
func killStopsLanes(t *testing.T, m *fourHop, signer *lane.Signer) {
	travelling := signer.Sign("gray", "shop-v2", "7", time.Now())
	r, err := m.inner("orders", withLane(travelling))
	must(t, err)
	must(t, servedFrom(r, grayFromOrders, "lane"))
	m.adminPost(t, "/v1/releases/shop-v2/kill")
	waitFor(t, "the kill at orders", 20*time.Second, func() error {
		r, err := m.inner("orders", withLane(travelling))
		if err != nil {
			return err
		}
		return servedFrom(r, stableFromOrders, "killed")
	})
	id := newTraceID()
	h := withLane(travelling)
	h["traceparent"] = "00-" + id + "-" + id[:16] + "-01"
	r, err = m.inner("orders", h)
	must(t, err)
	if next := r.Calls[0]; next.Gray[wire.HeaderReason] != "lane-missing" {
		t.Fatalf("the killed lane went on to inventory: %v", next.Gray)
	}
	spans := m.waitForSpans(id, "orders-sidecar inbound orders")
	m.expectTags(spans["orders-sidecar inbound orders"], map[string]string{
		wire.AttrVariant: "stable", wire.AttrReason: "killed", wire.AttrLane: "stable", wire.AttrRelease: "shop-v2",
	})
	for _, svc := range []string{"inventory", "pricing"} {
		r, err := m.inner(svc, withLane(travelling))
		must(t, err)
		if r.Env != "stable" || r.Gray[wire.HeaderReason] != "killed" {
			t.Fatalf("%s with a killed lane: %s %v", svc, r.Env, r.Gray)
		}
	}
	chain, err := m.chain(newTraceID(), bearer(m.token("alice", time.Now().Add(time.Hour))))
	must(t, err)
	if got := strings.Join(chain.hops(), " "); got != "frontend:stable "+stableFromOrders || chain.Gray[wire.HeaderReason] != "killed" {
		t.Fatalf("alice after the kill: %s (%v)", got, chain.Gray)
	}
	m.adminPost(t, "/v1/releases/shop-v2/revive")
	waitFor(t, "the revive at orders", 20*time.Second, func() error {
		r, err := m.inner("orders", withLane(travelling))
		if err != nil {
			return err
		}
		return servedFrom(r, grayFromOrders, "lane")
	})
}

// graymeshDown: without graymesh the edge fails open to stable, and the
// inner hops, which never asked it, keep routing the lanes they are
// handed until those expire.
func graymeshDown(t *testing.T, m *fourHop, key string) {
	m.graymesh.kill()
	chain, err := m.chain(newTraceID(), bearer(m.token("alice", time.Now().Add(time.Hour))))
	must(t, err)
	if got := strings.Join(chain.hops(), " "); got != "frontend:stable "+stableFromOrders {
		t.Fatalf("alice with graymesh down: %s", got)
	}
	short, err := lane.NewSigner([]byte(key), 3*time.Second)
	must(t, err)
	expiring := short.Sign("gray", "shop-v2", "7", time.Now())
	r, err := m.inner("orders", withLane(expiring))
	must(t, err)
	must(t, servedFrom(r, grayFromOrders, "lane"))
	waitFor(t, "the lane to expire at orders", 20*time.Second, func() error {
		r, err := m.inner("orders", withLane(expiring))
		if err != nil {
			return err
		}
		if err := servedFrom(r, stableFromOrders, "lane-refused"); err != nil {
			return err
		}
		if !strings.Contains(r.Gray[wire.HeaderLaneProblem], "expired") {
			return fmt.Errorf("lane problem %q", r.Gray[wire.HeaderLaneProblem])
		}
		return nil
	})
}
