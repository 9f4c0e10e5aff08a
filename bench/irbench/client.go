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
	"time"
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.sidecarURL(c), nil)
		if err != nil {
			return err
		}
		for k, v := range c.headers(l) {
			req.Header.Set(k, v)
		}
		if c.callers {
			req.Header.Set("Authorization", "Bearer "+h.tokens[h.next%len(h.tokens)])
			h.next++
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
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
			return fmt.Errorf("request %d: %s, served by %q, want %s", i, resp.Status, served, want)
		}
	}
	return nil
}

func (h *harness) sidecarURL(c Config) string {
	side := h.sidecars.inner
	if c.edge {
		side = h.sidecars.edge
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
