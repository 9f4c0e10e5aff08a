package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// status reads the admin /status document.
func (m *mesh) status(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(m.admin + "/status")
	must(t, err)
	defer resp.Body.Close()
	var st map[string]any
	must(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func (m *mesh) lastReload(t *testing.T) (result, version string) {
	lr, _ := m.status(t)["last_reload"].(map[string]any)
	r, _ := lr["result"].(string)
	v, _ := m.status(t)["config_version"].(string)
	return r, v
}

// editConfig rewrites the config file (graymesh watches it) and waits until
// graymesh has accepted or refused the new content.
func (m *mesh) editConfig(t *testing.T, from, to string) (result string) {
	t.Helper()
	b, err := os.ReadFile(m.configPath)
	must(t, err)
	if !strings.Contains(string(b), from) {
		t.Fatalf("config lacks %q", from)
	}
	_, before := m.lastReload(t)
	beforeAt := m.status(t)["last_reload"].(map[string]any)["at"]
	// Write and rename, as a ConfigMap update or a careful editor does.
	tmp := m.configPath + ".tmp"
	must(t, os.WriteFile(tmp, []byte(strings.Replace(string(b), from, to, 1)), 0o600))
	must(t, os.Rename(tmp, m.configPath))
	waitFor(t, "graymesh to act on the edit", 10*time.Second, func() error {
		if m.status(t)["last_reload"].(map[string]any)["at"] == beforeAt {
			return fmt.Errorf("no reload yet (version %s)", before)
		}
		return nil
	})
	result, _ = m.lastReload(t)
	return result
}

// envs asks for each subject once and returns where it was served.
func (m *mesh) envs(t *testing.T, subjects []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(subjects))
	var mu sync.Mutex
	err := parallel(len(subjects), 8, func(i int) error {
		r, err := m.get(bearer(m.token(subjects[i], time.Now().Add(time.Hour))))
		if err != nil {
			return err
		}
		mu.Lock()
		out[subjects[i]] = r.Env
		mu.Unlock()
		return nil
	})
	must(t, err)
	return out
}

// background keeps requests flowing until stopped and counts failures.
type background struct {
	stop           chan struct{}
	done           sync.WaitGroup
	sent, failures atomic.Int64
	firstErr       atomic.Value
}

func (m *mesh) load() *background {
	b := &background{stop: make(chan struct{})}
	deadline := time.Now().Add(2 * time.Minute) // bounded whatever happens
	for w := 0; w < 2; w++ {
		b.done.Add(1)
		go func(w int) {
			defer b.done.Done()
			for i := 0; time.Now().Before(deadline) && i < 100000; i++ {
				select {
				case <-b.stop:
					return
				default:
				}
				b.sent.Add(1)
				if _, err := m.get(bearer(m.token(fmt.Sprintf("load-%d-%d", w, i%50), time.Now().Add(time.Hour)))); err != nil {
					b.failures.Add(1)
					b.firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}(w)
	}
	return b
}

func (b *background) finish(t *testing.T) {
	t.Helper()
	close(b.stop)
	b.done.Wait()
	if n := b.failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests in flight failed while the config changed, first: %v", n, b.sent.Load(), b.firstErr.Load())
	}
	t.Logf("%d requests in flight during the changes, 0 failed", b.sent.Load())
}

func subjects(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ramp-user-%d", i)
	}
	return out
}

func TestRampEvictionAndBrokenFileUnderTraffic(t *testing.T) {
	m := newMesh(t, `
releases:
  - name: shop-v2
    env: gray
    salt: e2e-ramp
    percent: 10
`)
	load := m.load()
	all := subjects(400)
	at10 := m.envs(t, all)

	if r := m.editConfig(t, "percent: 10", "percent: 20"); r != "accepted" {
		t.Fatalf("ramp 10 → 20: %s", r)
	}
	at20 := m.envs(t, all)
	gray10, gray20 := 0, 0
	for _, s := range all {
		if at10[s] == "gray" {
			gray10++
			if at20[s] != "gray" {
				t.Fatalf("%s was gray at 10%% and is %s at 20%%", s, at20[s])
			}
		}
		if at20[s] == "gray" {
			gray20++
		}
	}
	t.Logf("gray: %d of %d at 10%%, %d at 20%%", gray10, len(all), gray20)
	if gray20 <= gray10 {
		t.Fatal("raising the percentage admitted nobody")
	}

	if r := m.editConfig(t, "percent: 20", "percent: 5"); r != "refused" {
		t.Fatalf("evicting edit 20 → 5: %s, want refused", r)
	}
	if st := m.status(t)["last_reload"].(map[string]any); !strings.Contains(fmt.Sprint(st["error"]), "release shop-v2: rule percent-lowered: percent lowered 20 → 5") {
		t.Fatalf("refusal does not name the rule: %v", st["error"])
	}
	assertSame(t, "after the refused eviction", at20, m.envs(t, all))

	if r := m.editConfig(t, "percent: 5", "percent: [5"); r != "refused" {
		t.Fatalf("broken file: %s, want refused", r)
	}
	assertSame(t, "after the broken file", at20, m.envs(t, all))
	load.finish(t)
}

func assertSame(t *testing.T, when string, want, got map[string]string) {
	t.Helper()
	for s, env := range want {
		if got[s] != env {
			t.Fatalf("%s: %s served by %s, was %s", when, s, got[s], env)
		}
	}
}

// adminPost calls a changing admin endpoint.
func (m *mesh) adminPost(t *testing.T, path string) {
	t.Helper()
	resp, err := http.Post(m.admin+path, "", nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", path, resp.Status, body)
	}
}

// membershipCookies sends one request per subject and returns the
// membership cookie each subject served by gray was given, by subject;
// a gray answer without the cookie or the services' header fails.
func (m *mesh) membershipCookies(t *testing.T, subjects []string) map[string]string {
	t.Helper()
	cookies := map[string]string{}
	for _, s := range subjects {
		req, _ := http.NewRequest(http.MethodGet, m.listener+"/", nil)
		req.Header.Set("Authorization", "Bearer "+m.token(s, time.Now().Add(time.Hour)))
		resp, err := m.client.Do(req)
		must(t, err)
		var r shopReply
		must(t, json.NewDecoder(resp.Body).Decode(&r))
		resp.Body.Close()
		if r.Env != "gray" {
			continue
		}
		for _, c := range resp.Cookies() {
			if c.Name == "gm_member" {
				cookies[s] = c.Value
			}
		}
		if cookies[s] == "" {
			t.Fatalf("%s admitted to gray without a membership cookie", s)
		}
		if resp.Header.Get("x-graymesh-member") == "" {
			t.Fatalf("%s: no membership header for services", s)
		}
	}
	return cookies
}

func TestFreezeKeepsMembersAndKillIsImmediate(t *testing.T) {
	m := newMesh(t, `
lane: {key: "e2e-lane-key-0123456789abcdef-0123456789"}
membership: {enabled: true}
releases:
  - name: shop-v2
    env: gray
    salt: e2e-freeze
    percent: 40
`)
	// Before the freeze: 60 subjects visit; the gray ones get a membership
	// cookie from the response.
	cookies := m.membershipCookies(t, subjects(60))
	if len(cookies) == 0 {
		t.Fatal("nobody admitted before the freeze")
	}
	// Subjects never seen whose bucket is in range.
	var fresh []string
	for i := 0; len(fresh) < 10 && i < 1000; i++ {
		s := fmt.Sprintf("fresh-%d", i)
		ex, err := m.explain("--subject", s)
		must(t, err)
		if ex["served"] == "gray" {
			fresh = append(fresh, s)
		}
	}

	m.adminPost(t, "/v1/releases/shop-v2/freeze")
	withCookie := func(s string) shopReply {
		h := bearer(m.token(s, time.Now().Add(time.Hour)))
		if c := cookies[s]; c != "" {
			h["Cookie"] = "gm_member=" + c
		}
		return m.mustGet(h)
	}
	for s := range cookies {
		if r := withCookie(s); r.Env != "gray" || r.Gray["x-gray-reason"] != "member" {
			t.Fatalf("member %s after freeze: %s (%v)", s, r.Env, r.Gray)
		}
	}
	for _, s := range fresh {
		if r := withCookie(s); r.Env != "stable" || r.Gray["x-gray-reason"] != "frozen" {
			t.Fatalf("new subject %s (bucket in range) after freeze: %s (%v)", s, r.Env, r.Gray)
		}
	}
	// Another member's cookie is not a pass.
	var someCookie string
	for _, c := range cookies {
		someCookie = c
		break
	}
	if r := m.mustGet(map[string]string{"Authorization": "Bearer " + m.token(fresh[0], time.Now().Add(time.Hour)), "Cookie": "gm_member=" + someCookie}); r.Env != "stable" {
		t.Fatalf("%s got in with someone else's membership", fresh[0])
	}

	killed := time.Now()
	m.adminPost(t, "/v1/releases/shop-v2/kill")
	// The kill is in force when the call returns: every request after it,
	// members included, is served by stable.
	for s := range cookies {
		r := withCookie(s)
		if r.Env != "stable" || r.Gray["x-gray-reason"] != "killed" {
			t.Fatalf("member %s %s after the kill: %s (%v)", s, time.Since(killed), r.Env, r.Gray)
		}
	}
	t.Logf("kill: every member served by stable from the first request after the call (sweep of %d members took %s)", len(cookies), time.Since(killed).Round(time.Millisecond))
}
