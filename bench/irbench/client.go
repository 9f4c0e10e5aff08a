package irbench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// The harness's client side: requests through the sidecar, and waiting
// for processes and ports.

// send sends n requests on one kept-alive connection, one after the
// other, and checks that gray served each.
func (h *harness) send(ctx context.Context, client *http.Client, c Config, n int) error {
	base := h.signer.Sign("gray", "shop-v2", h.version, time.Now())
	if c.beforeLane {
		base = beforeLane("gray", "shop-v2", h.version, time.Now().Add(time.Hour))
	}
	if c.longLane {
		w := h.signer.Window()
		base = longLane("gray", "shop-v2", h.version, time.Now().Truncate(w).Add(h.signer.TTL()))
	}
	for i := 0; i < n; i++ {
		l := base
		if c.freshLanes {
			// Another config version is another lane: one Envoy has not
			// verified yet.
			l = h.signer.Sign("gray", "shop-v2", h.version+"."+strconv.Itoa(i)+"."+strconv.FormatInt(time.Now().UnixNano(), 36), time.Now())
		}
		hdr := c.headers(l)
		switch {
		case c.callers:
			hdr["Authorization"] = "Bearer " + h.tokens[h.next%len(h.tokens)]
			h.next++
		case c.proofs:
			k := h.next % len(h.tokens)
			h.next++
			hdr["Authorization"], hdr[wire.HeaderProof] = "Bearer "+h.tokens[k], h.proofs[k]
		case c.firstSeen:
			// A caller graymesh has never seen: a subject of its own.
			tok, err := callerToken("new-"+strconv.Itoa(h.firstSeen), time.Now())
			if err != nil {
				return err
			}
			h.firstSeen++
			hdr["Authorization"] = "Bearer " + tok
		}
		got, err := h.do(ctx, client, c, hdr)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if c.firstSeen && got.Get(wire.HeaderProof) == "" {
			return fmt.Errorf("request %d: a first-seen caller was handed no proof", i)
		}
	}
	return nil
}

// do sends one request with headers hdr and checks that the environment
// c wants served it; it returns the response's headers.
func (h *harness) do(ctx context.Context, client *http.Client, c Config, hdr map[string]string) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.sidecarURL(c), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := "gray"
	if c.stable {
		want = "stable"
	}
	served := resp.Header.Get(servedHeader)
	if c.anonymous && served == "stable" {
		want = served // Envoy's split: either environment
	}
	if resp.StatusCode != http.StatusOK || served != want {
		return nil, fmt.Errorf("%s, served by %q, want %s", resp.Status, served, want)
	}
	return resp.Header, nil
}

// obtainProofs is the warm-up of a configuration whose callers return:
// each caller's first request, with its token and no proof, which the
// real graymesh decides and answers with the caller's proof (kept, and
// checked to be the caller's, of the config version the routes match);
// then each caller's request with its proof once, which Envoy verifies in
// full and caches (token and proof).
func (h *harness) obtainProofs(ctx context.Context, client *http.Client, c Config) error {
	h.proofs = make([]string, len(h.tokens))
	for i, tok := range h.tokens {
		got, err := h.do(ctx, client, c, map[string]string{"accept": "application/json", "Authorization": "Bearer " + tok})
		if err != nil {
			return fmt.Errorf("caller %d's first request: %w", i, err)
		}
		proof := got.Get(wire.HeaderProof)
		pr, err := h.signer.VerifyProof(proof, time.Now())
		if err != nil {
			return fmt.Errorf("caller %d: graymesh handed proof %q: %w", i, proof, err)
		}
		if !strings.HasSuffix("Bearer "+tok, pr.Token) || pr.Version != h.proofVersion || pr.Env != "gray" || pr.Release != "shop-v2" {
			return fmt.Errorf("caller %d: graymesh's proof names %+v, want the caller's token, gray, shop-v2, version %s (the routes')", i, pr, h.proofVersion)
		}
		h.proofs[i] = proof
	}
	h.next = 0
	return h.send(ctx, client, c, len(h.tokens))
}

func (h *harness) sidecarURL(c Config) string {
	side := h.sidecarsOf(c).inner
	if c.edge {
		side = h.sidecarsOf(c).edge
	}
	sc := side.Listeners[0].GetAddress().GetSocketAddress()
	return fmt.Sprintf("http://%s:%d/", sc.GetAddress(), sc.GetPortValue())
}

// beforeLane is a lane in the format graymesh signed before this change,
// for the graymesh of before: v1:env:release:version:expiry, then
// HMAC-SHA256 with the mesh key truncated to 128 bits, base64url.
func beforeLane(env, release, version string, exp time.Time) string {
	payload := "v1:" + env + ":" + release + ":" + version + ":" + strconv.FormatInt(exp.Unix(), 10)
	m := hmac.New(sha256.New, []byte(laneKey))
	m.Write([]byte(payload))
	return payload + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// signProofs is the warm-up of an attribution configuration whose
// callers send proofs graymesh is not there to hand out: each caller's
// proof signed as graymesh signs it (gray.Policy.proofFor: the lane
// signer's SignProof, the end of the caller's authorization header, the
// decision's environment, release and proof version, the caller hash when
// an analysis reads the access log, the config's proof TTL),
// then each caller's request with it once (Envoy's JWT caches warm).
func (h *harness) signProofs(ctx context.Context, client *http.Client, c Config) error {
	p, err := h.returningPolicy()
	if err != nil {
		return err
	}
	now := time.Now()
	h.proofs = make([]string, len(h.tokens))
	for i := range h.proofs {
		h.proofs[i] = signedProof(p, "user-"+strconv.Itoa(i), "Bearer "+h.tokens[i], now)
	}
	h.next = 0
	return h.send(ctx, client, c, len(h.tokens))
}

// signedProof is the proof graymesh under p hands a caller whose token
// (in authorization) names subject and who is admitted to gray by
// shop-v2.
func signedProof(p *gray.Policy, subject, authorization string, now time.Time) string {
	pr := lane.Proof{
		Token: authorization[len(authorization)-wire.ProofTokenBytes:], Env: "gray", Release: "shop-v2",
		Version: p.Plan.ProofVersion, Expires: now.Add(p.Plan.Callers.ProofTTL),
	}
	if p.Plan.Mesh.AccessLog {
		pr.CallerHash = p.SubjectHash(subject)
	}
	return p.Lanes.SignProof(pr)
}

// newClient keeps one connection; h2 makes it HTTP/2 without TLS (prior
// knowledge, which Envoy's AUTO codec detects by the connection preface).
func newClient(h2 bool) *http.Client {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: tr}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// poll calls check until it succeeds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dial checks that something listens on addr.
func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(url + ": " + resp.Status)
	}
	return nil
}
