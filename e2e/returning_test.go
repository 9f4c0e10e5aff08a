package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// returningMesh is the four-hop mesh with mesh.native_returning_callers.
type returningMesh struct {
	*fourHop
	// lastMember is the membership token the last call was handed.
	lastMember string
}

func newReturningMesh(t *testing.T, edits ...func(string) string) *returningMesh {
	t.Helper()
	all := append([]func(string) string{func(cfg string) string {
		return strings.Replace(cfg, "\n  message_timeout: 1s", "\n  message_timeout: 1s\n  native_returning_callers: true", 1)
	}}, edits...)
	return &returningMesh{fourHop: newFourHop(t, all...)}
}

// bearerToken is a token of subject's from the mesh's issuer, valid for
// an hour and a few seconds more for each n (n tells two tokens of one
// subject apart).
func (m *returningMesh) bearerToken(subject string, n ...int) string {
	return m.token(subject, time.Now().Add(time.Hour+time.Duration(len(n))*7*time.Second).Truncate(time.Second))
}

// call sends one chain through the edge with a token, a proof and a
// membership token (none for ""), and returns the chain's answer and the
// proof the edge handed back ("" when none).
func (m *returningMesh) call(token, proof string, member ...string) (chainReply, string, error) {
	req, err := http.NewRequest(http.MethodGet, m.edge+"/", nil)
	if err != nil {
		return chainReply{}, "", err
	}
	id := newTraceID()
	req.Header.Set("traceparent", "00-"+id+"-"+id[:16]+"-01")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if proof != "" {
		req.Header.Set(wire.HeaderProof, proof)
	}
	for _, v := range member {
		req.Header.Set(wire.DefaultMembershipHeader, v)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return chainReply{}, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return chainReply{}, "", fmt.Errorf("status %s: %s", resp.Status, body)
	}
	var r chainReply
	if err := json.Unmarshal(body, &r); err != nil {
		return chainReply{}, "", fmt.Errorf("%w: %s", err, body)
	}
	m.lastMember = resp.Header.Get(wire.DefaultMembershipHeader)
	return r, resp.Header.Get(wire.HeaderProof), nil
}

// firstCall is a caller's first request (with its membership token, if
// any): graymesh decides it and hands back a proof.
func (m *returningMesh) firstCall(t *testing.T, token string, member ...string) (chainReply, string) {
	t.Helper()
	before := m.extProcStreams()["frontend"]
	r, proof, err := m.call(token, "", member...)
	must(t, err)
	if proof == "" || r.Gray[wire.HeaderReason] == wire.ReasonProof {
		t.Fatalf("first call: proof %q, edge headers %v", proof, r.Gray)
	}
	if got := m.extProcStreams()["frontend"] - before; got != 1 {
		t.Fatalf("first call: %d ext_proc streams, want 1", got)
	}
	return r, proof
}

// TestMeshRoutesReturningCallersNatively: with
// mesh.native_returning_callers, graymesh decides a caller's first
// request and hands back a proof; the caller's later requests carrying it
// are routed by the edge's Envoy itself — no ext_proc stream — in the
// same environment on every hop, with reason proof. A proof sent with
// another token (another caller's, or the same caller's new one), a
// forged one, or one under a config that has
// changed since (a freeze, a kill) goes to graymesh, and a kill sends the
// caller to stable from the push on. verify-traces counts the chains as
// routed by Envoy.
func TestMeshRoutesReturningCallersNatively(t *testing.T) {
	m := newReturningMesh(t)
	alice, carol, bob := m.bearerToken("alice"), m.bearerToken("carol"), m.bearerToken("bob")
	first, aliceProof := m.firstCall(t, alice)
	aliceMember := m.lastMember
	if got := strings.Join(first.hops(), " "); got != "frontend:gray orders:gray inventory:stable pricing:gray" {
		t.Fatalf("alice (whitelisted) first: %s", got)
	}
	_, carolProof := m.firstCall(t, carol)

	streams := m.extProcStreams()["frontend"]
	const n = 20
	var ids []string
	for i := 0; i < n; i++ {
		id := newTraceID()
		ids = append(ids, id)
		r, err := m.chainAs(id, alice, aliceProof)
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != "frontend:gray orders:gray inventory:stable pricing:gray" || r.Gray[wire.HeaderReason] != wire.ReasonProof {
			t.Fatalf("alice's returning chain %d: %s (%v)", i, got, r.Gray)
		}
		r, err = m.chainAs(newTraceID(), carol, carolProof)
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != "frontend:stable orders:stable inventory:stable pricing:stable" || r.Gray[wire.HeaderReason] != wire.ReasonProof {
			t.Fatalf("carol's (blacklisted) returning chain %d: %s (%v)", i, got, r.Gray)
		}
	}
	if got := m.extProcStreams()["frontend"] - streams; got != 0 {
		t.Fatalf("%d ext_proc streams for %d returning callers' requests, want 0", got, 2*n)
	}

	// Not the caller's own, altered, or without the caller's token: to
	// graymesh, which decides by the rules.
	for _, c := range []struct{ what, token, proof string }{
		{"bob with alice's proof", bob, aliceProof},
		{"alice's new token with her old token's proof", m.bearerToken("alice", 1), aliceProof},
		{"alice with her proof under carol's signature", alice, aliceProof[:strings.LastIndexByte(aliceProof, '.')] + carolProof[strings.LastIndexByte(carolProof, '.'):]},
		{"alice's proof without a token", "", aliceProof},
		{"carol with alice's proof", carol, aliceProof},
	} {
		before := m.extProcStreams()["frontend"]
		r, _, err := m.call(c.token, c.proof)
		must(t, err)
		if r.Gray[wire.HeaderReason] == wire.ReasonProof {
			t.Fatalf("%s: routed on the proof (%v)", c.what, r.Gray)
		}
		if c.what == "carol with alice's proof" && r.Env != "stable" {
			t.Fatalf("%s: served by %s", c.what, r.Env)
		}
		if got := m.extProcStreams()["frontend"] - before; got != 1 {
			t.Fatalf("%s: %d ext_proc streams, want 1", c.what, got)
		}
	}

	// explain says what Envoy did with alice's proof, and what it does
	// with bob's token and her proof.
	for _, c := range []struct{ token, want string }{{alice, wire.ReasonProof}, {bob, "percent"}} {
		ex, err := m.explainInForce("--token", c.token, "--proof", aliceProof, "--service", "frontend")
		must(t, err)
		if ex["reason"] != c.want {
			t.Fatalf("explain: reason %v, want %s (%v)", ex["reason"], c.want, ex)
		}
	}
	m.assertNativeChains(t, ids, wire.ReasonProof, "gray")
	m.freezeThenKill(t, alice, aliceProof, aliceMember)
}

// freezeThenKill: a freeze, then a kill, retire the caller's proof.
func (m *returningMesh) freezeThenKill(t *testing.T, alice, aliceProof, aliceMember string) {
	t.Helper()
	const n = 20
	// A freeze changes the config: the old proof goes to graymesh once,
	// which keeps alice gray (she holds a membership token, as a member
	// does) and hands a new proof.
	if aliceMember == "" {
		t.Fatal("alice was admitted without a membership token")
	}
	m.adminPost(t, "/v1/releases/shop-v2/freeze")
	waitFor(t, "the freeze at the edge", 20*time.Second, func() error {
		r, _, err := m.call(alice, aliceProof, aliceMember)
		if err != nil {
			return err
		}
		if r.Gray[wire.HeaderReason] == wire.ReasonProof {
			return fmt.Errorf("old proof still routes: %v", r.Gray)
		}
		return nil
	})
	r, frozenProof := m.firstCall(t, alice, aliceMember)
	if r.Env != "gray" {
		t.Fatalf("alice after the freeze: %s", r.Env)
	}
	r, err := m.chainAs(newTraceID(), alice, frozenProof)
	must(t, err)
	if r.Env != "gray" || r.Gray[wire.HeaderReason] != wire.ReasonProof {
		t.Fatalf("alice's new proof under the freeze: %s (%v)", r.Env, r.Gray)
	}

	// A kill: from the push on, every request of alice's is stable, and
	// asks graymesh (her proof is of the config before the kill).
	m.adminPost(t, "/v1/releases/shop-v2/kill")
	waitFor(t, "the kill at the edge", 20*time.Second, func() error {
		r, _, err := m.call(alice, frozenProof)
		if err != nil {
			return err
		}
		if r.Env != "stable" {
			return fmt.Errorf("still %s (%v)", r.Env, r.Gray)
		}
		return nil
	})
	streams := m.extProcStreams()["frontend"]
	for i := 0; i < n; i++ {
		r, err := m.chainAs(newTraceID(), alice, frozenProof)
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != "frontend:stable orders:stable inventory:stable pricing:stable" || r.Gray[wire.HeaderReason] == wire.ReasonProof {
			t.Fatalf("alice's chain %d after the kill: %s (%v)", i, got, r.Gray)
		}
	}
	if got := m.extProcStreams()["frontend"] - streams; got != n {
		t.Fatalf("%d ext_proc streams for %d requests after the kill, want %d", got, n, n)
	}
}

// chainAs is chain with a token and a proof.
func (m *returningMesh) chainAs(traceID, token, proof string) (chainReply, error) {
	h := map[string]string{"Authorization": "Bearer " + token, wire.HeaderProof: proof}
	return m.chain(traceID, h)
}

// TestMeshMixAsksGraymeshOnlyForFirstSeen: with returning callers and
// anonymous traffic both routed by the edge's Envoy, a mix of 1,000
// requests — 800 from 80 returning callers, 100 anonymous, 100 from
// first-seen callers — opens exactly one ext_proc stream per first-seen
// caller, read from the edge Envoy's stats. The analysis still counts the
// returning callers: windows of returning traffic alone (no ext_proc
// answer to name a caller) have gray callers.
func TestMeshMixAsksGraymeshOnlyForFirstSeen(t *testing.T) {
	m := newReturningMesh(t, func(cfg string) string {
		cfg = strings.Replace(cfg, "native_returning_callers: true", "native_returning_callers: true\n  native_traffic_split: true", 1)
		return strings.Replace(cfg, "\n    percent: 50\n", "\n    percent: 50\n    traffic_percent: 50\n    analysis: {interval: 1s, min_requests: 100000}\n", 1)
	})
	const returning, each, anonymous, firstSeen = 80, 10, 100, 100
	type caller struct{ token, proof string }
	callers := make([]caller, returning)
	for i := range callers {
		callers[i].token = m.bearerToken(fmt.Sprintf("r%d", i))
		_, callers[i].proof = m.firstCall(t, callers[i].token)
	}

	// Returning callers alone, for the analysis's windows.
	before := m.extProcStreams()["frontend"]
	from := time.Now()
	grayRequests := 0
	for j := 0; j < each; j++ {
		for _, c := range callers {
			r, err := m.chainAs(newTraceID(), c.token, c.proof)
			must(t, err)
			if r.Gray[wire.HeaderReason] != wire.ReasonProof {
				t.Fatalf("returning caller not routed on its proof: %v", r.Gray)
			}
			if r.Env == "gray" {
				grayRequests++
			}
		}
	}
	to := time.Now()
	if got := m.extProcStreams()["frontend"] - before; got != 0 {
		t.Fatalf("%d ext_proc streams for %d returning requests", got, returning*each)
	}
	if grayRequests == 0 || grayRequests == returning*each {
		t.Fatalf("%d of %d returning requests gray at percent 50", grayRequests, returning*each)
	}
	m.assertProofCallersCounted(t, from, to)

	// The mix: the returning requests again, interleaved with anonymous
	// and first-seen ones.
	before = m.extProcStreams()["frontend"]
	sent := 0
	for j := 0; j < each; j++ {
		for i, c := range callers {
			_, _, err := m.call(c.token, c.proof)
			must(t, err)
			sent++
			if i%8 == 0 {
				_, _, err = m.call("", "")
				must(t, err)
				_, proof, err := m.call(m.bearerToken(fmt.Sprintf("f%d-%d", j, i)), "")
				must(t, err)
				if proof == "" {
					t.Fatal("a first-seen caller was handed no proof")
				}
				sent += 2
			}
		}
	}
	streams := m.extProcStreams()["frontend"] - before
	t.Logf("%d ext_proc streams for %d requests: %d returning, %d anonymous, %d first-seen", streams, sent, returning*each, anonymous, firstSeen)
	if sent != returning*each+anonymous+firstSeen || streams != firstSeen {
		t.Fatalf("%d ext_proc streams for %d requests of the mix, want %d (one per first-seen caller)", streams, sent, firstSeen)
	}
}

// assertProofCallersCounted: the analysis's windows within [from, to]
// count gray callers at the frontend, where only proofs named them.
func (m *returningMesh) assertProofCallersCounted(t *testing.T, from, to time.Time) {
	t.Helper()
	waitFor(t, "an analysis window within the returning traffic", 20*time.Second, func() error {
		st := analysisOf(t, m.admin, "shop-v2")
		inside := 0
		for _, w := range st.Windows {
			if w.From.Before(from) || w.To.After(to) {
				continue
			}
			for _, s := range w.Services {
				if s.Service == "frontend" && s.Gray.Requests > 0 {
					if s.Gray.Callers == 0 {
						return fmt.Errorf("window %d: %d gray requests, no caller", w.Index, s.Gray.Requests)
					}
					inside++
				}
			}
		}
		if inside == 0 {
			return fmt.Errorf("no window within %s … %s yet (%d windows)", from.Format(time.TimeOnly), to.Format(time.TimeOnly), len(st.Windows))
		}
		return nil
	})
}

// TestMeshExpiredProofAsksGraymesh: a proof routes for
// mesh.caller_proof_ttl (plus the lane's 5 s clock skew), then the
// caller's requests go to graymesh again, which hands a new one.
func TestMeshExpiredProofAsksGraymesh(t *testing.T) {
	m := newReturningMesh(t, func(cfg string) string {
		return strings.Replace(cfg, "native_returning_callers: true", "native_returning_callers: true\n  caller_proof_ttl: 1s", 1)
	})
	alice := m.bearerToken("alice")
	_, proof := m.firstCall(t, alice)
	issued := time.Now()
	r, _, err := m.call(alice, proof)
	must(t, err)
	if r.Gray[wire.HeaderReason] != wire.ReasonProof {
		t.Fatalf("a fresh proof did not route: %v", r.Gray)
	}
	var fresh string
	waitFor(t, "the proof's expiry", 30*time.Second, func() error {
		r, p, err := m.call(alice, proof)
		if err != nil {
			return err
		}
		if r.Gray[wire.HeaderReason] == wire.ReasonProof {
			return fmt.Errorf("still routed on its proof %s after it was issued", time.Since(issued).Round(time.Millisecond))
		}
		fresh = p
		return nil
	})
	if fresh == "" || fresh == proof {
		t.Fatal("graymesh handed no new proof for an expired one")
	}
	t.Logf("an expired proof went to graymesh %s after it was issued (ttl 1s, clock skew 5s)", time.Since(issued).Round(time.Millisecond))
}
