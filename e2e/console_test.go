package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/graymesh/graymesh/internal/testing/testutil"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "copy TestConsoleInBrowser's screenshots into docs/console/")

// findChromium returns the Chromium the browser test drives; a missing
// browser fails the test with the way to install it (skips it outside CI
// and make e2e, see missingPart).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, c := range []string{os.Getenv("CHROMIUM_BIN"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	missingPart(t, errors.New("no Chromium (CHROMIUM_BIN, /usr/bin/chromium, PATH)"), "make chromium (needs root for apt-get; or set CHROMIUM_BIN)")
	return ""
}

// artifacts is a new folder for a test's screenshots, kept after the
// test: under $GRAYMESH_E2E_ARTIFACTS when set, else the temp folder.
func artifacts(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("GRAYMESH_E2E_ARTIFACTS")
	if base != "" {
		must(t, os.MkdirAll(base, 0o755))
	}
	dir, err := os.MkdirTemp(base, "graymesh-e2e-"+name+"-")
	must(t, err)
	return dir
}

// browser is one headless Chromium with a fresh profile, and what it saw:
// every request URL and every console and security log entry.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the console, http://127.0.0.1:PORT
	out  string // where screenshots go

	mu   sync.Mutex
	urls []string
	logs []string
}

func newBrowser(t *testing.T, base, out string) *browser {
	t.Helper()
	b := &browser{t: t, base: base, out: out}
	// The flags REAL_PARTS.md lists for this machine, and a laptop's
	// screen. No default flags: each one here is chosen.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(findChromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // root in a container: Chromium's sandbox needs namespaces we do not have
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
		case *log.EventEntryAdded:
			b.logs = append(b.logs, fmt.Sprintf("%s %s: %s (%s)", e.Entry.Level, e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

// do runs steps with a time limit, failing the test with what it was doing.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.text("body"))
	}
}

func (b *browser) text(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		return fmt.Sprintf("(no %s: %v)", sel, err)
	}
	return s
}

// contains fails unless the text of sel holds every want.
func (b *browser) contains(sel string, want ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s lacks %q:\n%s", sel, w, got)
		}
	}
}

func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(b.t, err)
	must(b.t, os.WriteFile(filepath.Join(b.out, name+".png"), png, 0o644))
}

// observed is the observed-share cell of the page: the config version it
// counts since, the share in percent and the number of edge decisions.
type observed struct {
	Version string  `json:"v"`
	Percent float64 `json:"p"`
	Total   float64 `json:"n"`
}

func (b *browser) observed() observed {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	o, _ := chromedp.Run(ctx, chromedp.Evaluate[observed](`(() => {
		const e = document.querySelector('dd.observed');
		return e ? {v: e.dataset.version, p: +e.dataset.percent, n: +e.dataset.total} : {v: '', p: 0, n: 0};
	})()`))
	return o
}

// waitObserved polls the page (which polls graymesh) until ok holds.
func (b *browser) waitObserved(what string, ok func(observed) bool) observed {
	b.t.Helper()
	var o observed
	err := testutil.Poll{Tries: 120, Every: 250 * time.Millisecond}.Until(func() error {
		if o = b.observed(); !ok(o) {
			return fmt.Errorf("the page shows %+v", o)
		}
		return nil
	})
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return o
}

// sendDevices sends one request per anonymous device d-1…d-n through the
// demo's Envoy: bounded load, each device bucketed by the percentage.
func sendDevices(t *testing.T, d *demo, n int) {
	t.Helper()
	must(t, parallel(n, 4, func(i int) error {
		_, err := d.client.get(map[string]string{"Cookie": fmt.Sprintf("gm_device=d-%d", i+1)})
		return err
	}))
}

// TestConsoleInBrowser drives the console in headless Chromium against the
// demo (`make run`'s script, with graymesh, Envoy and shop stable and
// gray): log in, see the release, explain a caller, ramp 30 → 50 through
// the confirmation and its blast radius, watch the observed gray share
// follow under load, freeze and kill with a reason, and see an evicting
// change refused with graymesh's message. Then it checks that the token
// appeared in no URL and no log, and that actions without the session or
// the CSRF token are refused.
//
//nolint:funlen // one browser session, one story: each step acts on the page the previous left
func TestConsoleInBrowser(t *testing.T) {
	chromium := findChromium(t)
	out := artifacts(t, "console")
	t.Logf("screenshots: %s (Chromium %s)", out, chromium)

	d := startDemo(t)
	tokenFile := filepath.Join(d.work, "state", "console-token")
	var token string
	waitFor(t, "the console token file", 10*time.Second, func() error {
		b, err := os.ReadFile(tokenFile)
		token = strings.TrimSpace(string(b))
		if err == nil && token == "" {
			err = fmt.Errorf("%s is empty", tokenFile)
		}
		return err
	})
	if want := fmt.Sprintf("console          %s/ui/", d.admin); !strings.Contains(d.output(), want) {
		t.Fatalf("the demo script does not print %q:\n%s", want, d.output())
	}
	b := newBrowser(t, d.admin, out)

	// Log in: a wrong token first, then the right one.
	b.do("open the console", chromedp.Navigate(d.admin+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("01-login")
	b.do("a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("p.problem")))
	b.contains("p.problem", "That token is not accepted.")
	b.do("log in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("table.releases")))
	b.contains("table.releases", "shop-v2", "gray", "active", "30%", "no schedule", "whitelist 3", "blacklist 2", "claims 1", "headers 1")

	// Under load at 30%, the observed share settles near 30%.
	sendDevices(t, d, 400)
	before := b.waitObserved("the observed share at 30%", func(o observed) bool { return o.Version == "1" && o.Total >= 400 })
	if before.Percent < 20 || before.Percent > 40 {
		t.Errorf("observed %.1f%% of %v decisions at 30%%", before.Percent, before.Total)
	}
	b.shot("02-releases")

	// A refresh keeps the keyboard focus where it was and does not
	// re-announce the live footer to screen readers.
	_, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => {
		window.gmSeen = {live: 0, status: 0};
		new MutationObserver(() => window.gmSeen.live++).observe(document.getElementById('live'), {childList: true});
		new MutationObserver(() => window.gmSeen.status++).observe(document.getElementById('live-status'), {childList: true, characterData: true, subtree: true});
		document.querySelector('table.releases a').focus();
		return true;
	})()`))
	must(t, err)
	sendDevices(t, d, 20)
	waitFor(t, "two refreshes of the releases page", 15*time.Second, func() error {
		if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`window.gmSeen.live`)); n < 2 {
			return fmt.Errorf("%d refreshes", n)
		}
		return nil
	})
	if href, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement ? (document.activeElement.getAttribute('href') || document.activeElement.tagName) : ''`)); href != "/ui/releases/shop-v2" {
		t.Errorf("after a refresh the focus is on %q, not the release link", href)
	}
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`window.gmSeen.status`)); n > 1 {
		t.Errorf("the live footer changed %d times in two refreshes: a screen reader hears each", n)
	}

	// Explain: the page says what `graymesh explain --admin` says.
	b.do("explain u7", chromedp.Navigate(d.admin+"/ui/explain"), chromedp.SendKeys(chromedp.ID("subject"), "u7"),
		chromedp.Click(chromedp.ID("explain-submit")), chromedp.WaitVisible(chromedp.CSS("dd.reason")))
	cli, err := runExplain([]string{"--admin", d.admin, "--subject", "u7"})
	must(t, err)
	if got := b.text("dd.reason"); got != cli["reason"] {
		t.Errorf("console reason %q, graymesh explain %q", got, cli["reason"])
	}
	if got := b.text("dd.served"); got != cli["served"] {
		t.Errorf("console served by %q, graymesh explain %q", got, cli["served"])
	}
	b.shot("03-explain")

	// The chart draws one point per closed interval of at least 4 s: wait
	// until the 30% traffic has its own point, so the 50% traffic cannot
	// fall into the same interval however fast this machine runs.
	var dots []float64
	readDots := func() {
		dots, _ = chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](`[...document.querySelectorAll('circle.observed-dot')].map(c => +c.getAttribute('cy'))`))
	}
	waitFor(t, "the chart's point for the 30% interval", 20*time.Second, func() error {
		b.do("release page", chromedp.Navigate(d.admin+"/ui/releases/shop-v2"), chromedp.WaitVisible(chromedp.ID("ramp-value")))
		if readDots(); len(dots) == 0 {
			return errors.New("no point yet")
		}
		return nil
	})

	// Ramp 30 → 50: the confirmation shows the blast radius first.
	b.do("preview 50%", chromedp.Navigate(d.admin+"/ui/releases/shop-v2"), chromedp.WaitVisible(chromedp.ID("ramp-value")),
		chromedp.SetValue(chromedp.ID("ramp-value"), "50"), chromedp.Click(chromedp.ID("ramp-preview")),
		chromedp.WaitVisible(chromedp.ID("no-evictions")))
	b.contains("h1", "Confirm: ramp to 50%")
	b.contains("table.blast", "percent raised 30 → 50", "0.00%")
	if got := b.text("td.to-gray"); !regexp.MustCompile(`^(19|20|21)\.\d\d%$`).MatchString(got) {
		t.Errorf("stable → gray %q, want about 20%%", got)
	}
	b.shot("04-confirm-ramp")
	b.do("confirm 50%", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.CSS("p.notice.done")))
	b.contains("main", "Percentage changed.", "50%", "percent 30 → 50")

	// The observed share follows, counted since the new version.
	sendDevices(t, d, 400)
	after := b.waitObserved("the observed share at 50%", func(o observed) bool { return o.Version == "2" && o.Total >= 400 })
	if after.Percent < 40 || after.Percent > 60 || after.Percent <= before.Percent {
		t.Errorf("observed %.1f%% at 50%% (was %.1f%% at 30%%)", after.Percent, before.Percent)
	}
	t.Logf("observed gray share: %.1f%% of %v at 30%%, %.1f%% of %v at 50%%", before.Percent, before.Total, after.Percent, after.Total)

	// Keyboard: Tab reaches the ramp form and the actions.
	reached := map[string]bool{}
	for i := 0; i < 40 && (!reached["ramp-value"] || !reached["ramp-preview"] || !reached["act-freeze"] || !reached["act-kill"]); i++ {
		b.do("tab", chromedp.KeyEvent("\t"))
		id, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ''`))
		reached[id] = true
	}
	for _, id := range []string{"ramp-value", "ramp-preview", "act-freeze", "act-kill"} {
		if !reached[id] {
			t.Errorf("Tab never reached #%s (reached %v)", id, reached)
		}
	}
	// The chart draws the share per interval: the 30% and the 50% ones.
	waitFor(t, "the chart showing the share rising", 20*time.Second, func() error {
		if readDots(); len(dots) >= 2 && dots[len(dots)-1] < dots[0] {
			return nil
		}
		return fmt.Errorf("dots at y %v", dots)
	})
	b.shot("05-release")

	// Freeze, then kill, each with a reason that the timeline shows.
	b.do("freeze", chromedp.Click(chromedp.ID("act-freeze")), chromedp.WaitVisible(chromedp.ID("reason")))
	b.contains("table.blast", "frozen")
	b.do("confirm freeze", chromedp.SendKeys(chromedp.ID("reason"), "error budget review"), chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.notice.done")))
	b.contains("main", "Frozen.", "frozen", "state active → frozen", "error budget review")
	b.do("kill", chromedp.Click(chromedp.ID("act-kill")), chromedp.WaitVisible(chromedp.ID("reason")))
	b.contains("table.blast", "killed")
	b.do("confirm kill", chromedp.SendKeys(chromedp.ID("reason"), "5xx spike on checkout"), chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.notice.done")))
	b.contains("main", "Killed", "state frozen → killed", "5xx spike on checkout")
	b.shot("06-killed")
	if r := d.client.mustGet(bearer(d.token("alice"))); r.Env != "stable" {
		t.Errorf("alice served by %s after the kill", r.Env)
	}
	b.do("revive", chromedp.Click(chromedp.ID("act-revive")), chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SendKeys(chromedp.ID("reason"), "fix deployed"), chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.notice.done")))

	// An evicting change without a rollback declaration: the preview warns,
	// and graymesh refuses it with its reason.
	b.do("preview 10%", chromedp.SetValue(chromedp.ID("ramp-value"), "10"), chromedp.Click(chromedp.ID("ramp-preview")),
		chromedp.WaitVisible(chromedp.ID("evictions")))
	b.contains("#evictions", "percent lowered 50 → 10", "graymesh will refuse it")
	b.do("confirm 10%", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("refused")))
	b.contains("#refused", "graymesh refused this change", "change would move gray subjects back to stable", "percent lowered 50 → 10")
	b.shot("07-refused")
	b.do("back to the release", chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.CSS("table.history")))
	b.contains("table.history", "✕ refused", "percent lowered 50 → 10", "fix deployed")
	b.contains("main", "50%")

	// What the admin API says agrees.
	resp, err := http.Get(d.admin + "/v1/releases")
	must(t, err)
	api, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(api), `"percent": 50`) || !strings.Contains(string(api), `"state": "active"`) {
		t.Errorf("/v1/releases after the session: %s", api)
	}

	// The session cookie is out of the scripts' reach.
	if ck, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(ck, "gm_console") {
		t.Errorf("document.cookie shows the session: %q", ck)
	}
	consoleSecurity(t, d, token)

	// The token never travelled in a URL, and no log holds it.
	b.mu.Lock()
	for _, u := range b.urls {
		if strings.Contains(u, token) {
			t.Errorf("the token is in a URL: %s", u)
		}
	}
	for _, l := range b.logs {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Content-Security-Policy") {
			t.Errorf("the page broke its own CSP: %s", l)
		}
	}
	t.Logf("%d requests, %d browser log entries: %q", len(b.urls), len(b.logs), b.logs)
	b.mu.Unlock()
	for _, name := range []string{"run-demo.out", "work/graymesh.log", "work/envoy.log"} {
		if data, _ := os.ReadFile(filepath.Join(d.dir, name)); strings.Contains(string(data), token) {
			t.Errorf("the token is in %s", name)
		}
	}

	if *updateScreenshots && !t.Failed() {
		docs := filepath.Join(repoRoot, "docs", "console")
		must(t, os.MkdirAll(docs, 0o755))
		for _, name := range []string{"02-releases", "03-explain", "04-confirm-ramp", "05-release", "07-refused"} {
			data, err := os.ReadFile(filepath.Join(out, name+".png"))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(docs, name+".png"), data, 0o644))
		}
		t.Logf("screenshots copied to %s", docs)
	}
}

// consoleSecurity checks, with a plain HTTP client, that a console action
// needs the session cookie and the session's CSRF token, and is refused
// from another site.
func consoleSecurity(t *testing.T, d *demo, token string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	field := regexp.MustCompile(`name="(?:login_csrf|csrf)" value="([0-9a-f]+)"`)
	page := func(resp *http.Response, err error) string {
		t.Helper()
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	post := func(form url.Values, origin string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", d.admin+"/ui/releases/shop-v2/act", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	kill := url.Values{"action": {"kill"}, "reason": {"forged"}}
	if code := post(kill, ""); code != http.StatusUnauthorized {
		t.Errorf("kill without a session: %d", code)
	}
	m := field.FindStringSubmatch(page(c.Get(d.admin + "/ui/login")))
	if m == nil {
		t.Fatal("no login form")
	}
	resp, err := c.PostForm(d.admin+"/ui/login", url.Values{"login_csrf": {m[1]}, "token": {token}})
	must(t, err)
	resp.Body.Close()
	m = field.FindStringSubmatch(page(c.Get(d.admin + "/ui/")))
	if m == nil {
		t.Fatal("no CSRF token on the releases page after login")
	}
	if code := post(kill, ""); code != http.StatusForbidden {
		t.Errorf("kill without the CSRF token: %d", code)
	}
	kill.Set("csrf", m[1])
	if code := post(kill, "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("kill from another site: %d", code)
	}
	kill.Set("csrf", strings.Repeat("0", len(m[1])))
	if code := post(kill, ""); code != http.StatusForbidden {
		t.Errorf("kill with a wrong CSRF token: %d", code)
	}
	if r := d.client.mustGet(bearer(d.token("alice"))); r.Env != "gray" {
		t.Errorf("a refused console request changed routing: alice served by %s", r.Env)
	}
}

// TestConsoleChainsInBrowser shows the four-hop mesh's chains, read from a
// real Jaeger, in the console: a clean gray chain with inventory's
// explained fallback, then chains that leak at pricing once inventory drops
// the lane — each hop labelled with the environment that served it, the
// leaks marked and counted, and each chain linked to its trace.
func TestConsoleChainsInBrowser(t *testing.T) {
	findChromium(t)
	out := artifacts(t, "console-chains")
	t.Logf("screenshots: %s", out)
	m := newFourHop(t)
	// The same graymesh (state, config, ports), now with the chains page
	// reading the test's Jaeger; the sidecars reconnect over ADS.
	m.graymesh.kill()
	state := filepath.Join(m.dir, "state")
	m.graymesh = start(t, m.dir, "graymesh-console", filepath.Join(binDir, "graymesh"), "serve", "--config", m.configPath,
		"--state-dir", state, "--console-jaeger", m.query, "--console-jaeger-ui", m.query, "--console-trace-service", "frontend")
	waitFor(t, "graymesh with the console", 10*time.Second, httpOK(m.admin+"/readyz"))
	alice := bearer(m.token("alice", time.Now().Add(time.Hour)))
	var clean string
	waitFor(t, "alice's chain in gray again", 20*time.Second, func() error {
		clean = newTraceID()
		r, err := m.chain(clean, alice)
		if err == nil && strings.Join(r.hops(), " ") != "frontend:gray orders:gray inventory:stable pricing:gray" {
			err = fmt.Errorf("chain %v", r.hops())
		}
		return err
	})
	// inventory is killed next: its span of this chain must be in Jaeger
	// first (SIGKILL loses what the exporter still holds).
	m.waitForTraces([]string{clean})
	m.services["inventory-stable"].kill()
	a := exampleApps[4]
	m.startApp(a.service, a.env, a.version, a.port, a.calls, a.outbound, "--drop-lane")
	ids := []string{clean}
	for i := 0; i < 3; i++ {
		id := newTraceID()
		_, err := m.chain(id, alice)
		must(t, err)
		ids = append(ids, id)
	}
	m.waitForTraces(ids)

	b := newBrowser(t, m.admin, out)
	tok, err := os.ReadFile(filepath.Join(state, "console-token"))
	must(t, err)
	b.do("log in", chromedp.Navigate(m.admin+"/ui/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(tok))), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("table.releases")))
	b.do("chains", chromedp.Navigate(m.admin+"/ui/chains"), chromedp.WaitVisible(chromedp.CSS("table.chains")))
	b.contains("table.chains", "frontend gray", "orders gray", "inventory stable", "↩ fallback: no-gray-version", "pricing stable ✕ leak", "pricing gray")
	if leaks := b.text("#leaks"); leaks == "0" || strings.HasPrefix(leaks, "(") {
		t.Errorf("leaks %q, want the dropped lane's", leaks)
	}
	for _, id := range ids {
		href, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const a = [...document.querySelectorAll('table.chains a')].find(a => a.textContent === %q); return a ? a.href : ''; })()`, id)))
		if href != m.query+"/trace/"+id {
			t.Errorf("chain %s links to %q", id, href)
		}
	}
	// The filter keeps the leaking chains, each linked to its trace.
	b.do("only leaks, fail-opens and lagging-node splits", chromedp.Click(chromedp.ID("filter-problems")), chromedp.WaitVisible(chromedp.ID("filter-all")))
	if rows, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.chains tbody tr.has-leak').length`)); rows != len(ids)-1 {
		t.Errorf("the filter shows %d leaking chains, want %d", rows, len(ids)-1)
	}
	// What a refresh costs against this Jaeger, after the page's first
	// read of the window (logged, not asserted: wall clock on a shared
	// machine).
	took, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](`(async () => {
		const t0 = performance.now(); await (await fetch('/ui/live/chains')).text();
		const t1 = performance.now(); await (await fetch('/ui/live/chains')).text();
		return [t1 - t0, performance.now() - t1]; })()`, chromedp.EvalAwaitPromise))
	must(t, err)
	t.Logf("chains page refreshes: %.0f ms, %.0f ms", took[0], took[1])
	b.do("every chain", chromedp.Click(chromedp.ID("filter-all")), chromedp.WaitVisible(chromedp.ID("filter-problems")))
	b.shot("08-chains")
	if *updateScreenshots && !t.Failed() {
		data, err := os.ReadFile(filepath.Join(out, "08-chains.png"))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(repoRoot, "docs", "console", "08-chains.png"), data, 0o644))
	}
}
