package console

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/tracecheck"
	"github.com/graymesh/graymesh/internal/core/tracecheck/jaegertest"
	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

const testConfig = `
server: {admin_listen: 127.0.0.1:18080}
identity: {device_cookie: gm_device}
membership: {enabled: true}
lane: {key: console-test-lane-key-0123456789abcdef}
releases:
  - {name: shop-v2, env: gray, whitelist: [alice], blacklist: [carol], percent: 30}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

// fixture is a daemon with its console behind an httptest server, and a
// browser-like client (cookie jar, no redirects followed).
type fixture struct {
	t      *testing.T
	d      *daemon.Daemon
	c      *Console
	srv    *httptest.Server
	client *http.Client
	token  string
	logs   *bytes.Buffer
	path   string // the config file
}

func newFixture(t *testing.T, opts daemon.Options, copts Options) *fixture {
	t.Helper()
	return newFixtureWith(t, testConfig, opts, copts)
}

func newFixtureWith(t *testing.T, config string, opts daemon.Options, copts Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "graymesh.yaml")
	must(t, os.WriteFile(path, []byte(config), 0o600))
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(dir, "state")
	}
	f := &fixture{t: t, logs: &bytes.Buffer{}, path: path}
	log := slog.New(slog.NewTextHandler(f.logs, nil))
	opts.Console = func(d *admin.Service) (http.Handler, error) {
		c, err := New(d, copts, log)
		f.c = c
		return c, err
	}
	d, err := daemon.New(context.Background(), path, opts, log)
	must(t, err)
	f.d = d
	f.srv = httptest.NewServer(d.AdminHandler())
	t.Cleanup(f.srv.Close)
	jar, _ := cookiejar.New(nil)
	f.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.token = opts.AdminToken
	if f.token == "" {
		b, err := os.ReadFile(filepath.Join(opts.StateDir, tokenFileName))
		must(t, err)
		f.token = strings.TrimSpace(string(b))
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	must(f.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	must(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var hidden = regexp.MustCompile(`name="(login_csrf|csrf)" value="([0-9a-f]+)"`)

// login logs in through the form and returns the session's CSRF token.
func (f *fixture) login() string {
	f.t.Helper()
	_, page := f.do("GET", "/ui/login", nil, nil)
	m := hidden.FindStringSubmatch(page)
	if m == nil {
		f.t.Fatalf("login form without its CSRF field:\n%s", page)
	}
	resp, _ := f.do("POST", "/ui/login", url.Values{"login_csrf": {m[2]}, "token": {f.token}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		f.t.Fatalf("login: %s → %s", resp.Status, resp.Header.Get("Location"))
	}
	_, page = f.do("GET", "/ui/", nil, nil)
	m = hidden.FindStringSubmatch(page)
	if m == nil || m[1] != "csrf" {
		f.t.Fatalf("releases page without a CSRF token:\n%s", page)
	}
	return m[2]
}

// refusedLogins tries the logins the console must refuse, each setting no
// session, and returns the nonce of the fresh login form after them.
func refusedLogins(t *testing.T, f *fixture) string {
	t.Helper()
	_, page := f.do("GET", "/ui/login", nil, nil)
	nonce := hidden.FindStringSubmatch(page)[2]
	for _, tt := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		code int
	}{
		{"wrong token", url.Values{"login_csrf": {nonce}, "token": {"nope"}}, nil, http.StatusUnauthorized},
		{"no login CSRF", url.Values{"token": {f.token}}, nil, http.StatusForbidden},
		{"another site", url.Values{"login_csrf": {nonce}, "token": {f.token}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
	} {
		resp, _ := f.do("POST", "/ui/login", tt.form, tt.hdr)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %s, want %d", tt.name, resp.Status, tt.code)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie && ck.Value != "" {
				t.Errorf("%s: a session cookie was set", tt.name)
			}
		}
		// Each refusal renders a fresh login form with a new nonce.
		_, page := f.do("GET", "/ui/login", nil, nil)
		nonce = hidden.FindStringSubmatch(page)[2]
	}

	return nonce
}

// withCSRF is form v with the CSRF token tok.
func withCSRF(v url.Values, tok string) url.Values {
	out := url.Values{"csrf": {tok}}
	for k, vs := range v {
		out[k] = vs
	}
	return out
}

// refusedActions sends form (an action) without, with a wrong, and from
// another site with the right CSRF token: each must be refused.
func refusedActions(t *testing.T, f *fixture, kill url.Values, csrf string) {
	t.Helper()
	for _, tt := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		code int
	}{
		{"no CSRF token", kill, nil, http.StatusForbidden},
		{"wrong CSRF token", withCSRF(kill, strings.Repeat("0", len(csrf))), nil, http.StatusForbidden},
		{"another site", withCSRF(kill, csrf), map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
	} {
		if resp, _ := f.do("POST", "/ui/releases/shop-v2/act", tt.form, tt.hdr); resp.StatusCode != tt.code {
			t.Errorf("%s: %s, want %d", tt.name, resp.Status, tt.code)
		}
	}
}

func TestLoginSessionCookieAndCSRF(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	if len(f.token) != 2*tokenBytes {
		t.Fatalf("console token %d characters", len(f.token))
	}
	resp, _ := f.do("GET", "/ui/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui/ before login: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if resp, _ := f.do("GET", "/ui/live/releases", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("live fragment before login: %s", resp.Status)
	}

	nonce := refusedLogins(t, f)
	resp, _ = f.do("POST", "/ui/login", url.Values{"login_csrf": {nonce}, "token": {f.token}}, nil)
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/ui/" {
		t.Fatalf("login: %s, cookie %+v", resp.Status, session)
	}
	_, page := f.do("GET", "/ui/", nil, nil)
	csrf := hidden.FindStringSubmatch(page)[2]
	if !strings.Contains(page, "shop-v2") || !strings.Contains(page, "30%") {
		t.Fatalf("releases page:\n%s", page)
	}

	kill := url.Values{"action": {"kill"}, "reason": {"5xx spike"}}
	refusedActions(t, f, kill, csrf)
	if f.d.Config().Releases[0].State != "active" {
		t.Fatal("a refused console action changed the release")
	}

	// Without the session cookie, the right CSRF token is not enough.
	anon := &http.Client{CheckRedirect: f.client.CheckRedirect}
	r, err := anon.PostForm(f.srv.URL+"/ui/releases/shop-v2/act", withCSRF(kill, csrf))
	must(t, err)
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("action without a session: %s", r.Status)
	}

	resp, _ = f.do("POST", "/ui/releases/shop-v2/act", withCSRF(kill, csrf), map[string]string{"Origin": f.srv.URL})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/releases/shop-v2?done=kill" {
		t.Fatalf("kill: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if h := f.d.Pipeline().History("shop-v2")[0]; f.d.Config().Releases[0].State != "killed" || h.Reason != "5xx spike" {
		t.Fatalf("after kill: %s, history %+v", f.d.Config().Releases[0].State, h)
	}
	_, page = f.do("GET", "/ui/releases/shop-v2?done=kill", nil, nil)
	for _, want := range []string{"Killed: everyone it admitted is served by stable.", "5xx spike", "state active → killed", "Revive…", "<td>console"} {
		if !strings.Contains(page, want) {
			t.Errorf("release page lacks %q", want)
		}
	}

	// Log out: the session is gone on the server too.
	resp, _ = f.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/ui/", nil)
	req.AddCookie(session)
	r, err = anon.Do(req)
	must(t, err)
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session cookie still works after logout: %s", r.Status)
	}

	if strings.Contains(f.logs.String(), f.token) {
		t.Fatal("the token is in the log")
	}
}

func TestAdminTokenOpensTheConsole(t *testing.T) {
	tok := strings.Repeat("a1", 20)
	f := newFixture(t, daemon.Options{AdminToken: tok}, Options{})
	if f.c.TokenFile() != "" {
		t.Fatalf("a console token file %s beside an admin token", f.c.TokenFile())
	}
	if _, err := os.Stat(filepath.Join(f.d.API().StateDir(), tokenFileName)); err == nil {
		t.Fatal("console token written although the admin token opens the console")
	}
	f.login()
	if strings.Contains(f.logs.String(), tok) {
		t.Fatal("the admin token is in the log")
	}
}

func TestConfirmShowsTheBlastRadiusAndTheServersRefusal(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{PreviewSample: 4000})
	csrf := f.login()
	resp, page := f.do("GET", "/ui/releases/shop-v2/confirm?action=percent&value=50", nil, nil)
	for _, want := range []string{"Confirm: ramp to 50%", "stable → gray", "percent raised 30 → 50", "No subject leaves gray", `name="csrf" value="` + csrf} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("ramp confirmation lacks %q", want)
		}
	}
	if f.d.Config().Releases[0].Percent != 30 {
		t.Fatal("a confirmation page changed the config")
	}
	resp, _ = f.do("POST", "/ui/releases/shop-v2/act", url.Values{"csrf": {csrf}, "action": {"percent"}, "value": {"50"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || f.d.Config().Releases[0].Percent != 50 {
		t.Fatalf("ramp: %s, percent %g", resp.Status, f.d.Config().Releases[0].Percent)
	}

	_, page = f.do("GET", "/ui/releases/shop-v2/confirm?action=percent&value=10", nil, nil)
	if !strings.Contains(page, "This sends gray users back to stable") || !strings.Contains(page, "graymesh will refuse it") {
		t.Errorf("an evicting change's confirmation does not warn:\n%s", page)
	}
	resp, page = f.do("POST", "/ui/releases/shop-v2/act", url.Values{"csrf": {csrf}, "action": {"percent"}, "value": {"10"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "graymesh refused this change") ||
		!strings.Contains(page, "change would move gray subjects back to stable") || !strings.Contains(page, "percent lowered 50 → 10") {
		t.Fatalf("refused change: %s\n%s", resp.Status, page)
	}
	if f.d.Config().Releases[0].Percent != 50 {
		t.Fatal("a refused change took effect")
	}

	// A declared rollback needs a reason, then goes through.
	rollback := url.Values{"csrf": {csrf}, "action": {"percent"}, "value": {"10"}, "rollback": {"on"}}
	if resp, page := f.do("POST", "/ui/releases/shop-v2/act", rollback, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Say why") {
		t.Fatalf("rollback without a reason: %s", resp.Status)
	}
	rollback.Set("reason", "error rate above 1%")
	if resp, _ := f.do("POST", "/ui/releases/shop-v2/act", rollback, nil); resp.StatusCode != http.StatusSeeOther || f.d.Config().Releases[0].Percent != 10 {
		t.Fatalf("declared rollback: %s", resp.Status)
	}
	_, page = f.do("GET", "/ui/releases/shop-v2", nil, nil)
	for _, want := range []string{"✕ refused", "percent 30 → 50", "percent 50 → 10", "error rate above 1%", "rollback", "Not available"} {
		if !strings.Contains(page, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
}

func TestExplainIsTheAPIsExplanation(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	csrf := f.login()
	for _, subject := range []string{"alice", "carol", "u7"} {
		want, err := f.d.API().Explain(context.Background(), gray.Ask{Subject: subject})
		must(t, err)
		resp, page := f.do("POST", "/ui/explain", url.Values{"csrf": {csrf}, "subject": {subject}}, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<dd class="reason">`+string(want.Reason)+`</dd>`) ||
			!strings.Contains(page, `<dd class="served">`+want.Served+`</dd>`) {
			t.Errorf("%s: console differs from Explain %+v:\n%s", subject, want, page)
		}
	}
	resp, page := f.do("POST", "/ui/explain", url.Values{"csrf": {csrf}, "token": {"not.a.token"}}, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "invalid-token") || strings.Contains(page, "not.a.token") {
		t.Fatalf("explain of a bad token: %s\n%s", resp.Status, page)
	}
	if resp, _ := f.do("POST", "/ui/explain", url.Values{"csrf": {csrf}, "ip": {"not-an-ip"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("explain with a bad IP: %s", resp.Status)
	}
}

func TestHeadersAndForeignHost(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	resp, body := f.do("GET", "/ui/static/app.js", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "data-live-src") {
		t.Fatalf("app.js: %s", resp.Status)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	resp, _ = f.do("GET", "/ui/login", nil, map[string]string{"Host": "evil.example:18080"})
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("a foreign Host on a loopback console: %s", resp.Status)
	}
}

func TestChainsFromJaeger(t *testing.T) {
	store := &jaegertest.Store{}
	now := time.Now().Add(-time.Minute).UnixMicro()
	store.Add(chain("t-ok", now-2000, hopTags{"frontend", "gray", ""}, hopTags{"inventory", "stable", "no-gray-version"}, hopTags{"pricing", "gray", ""}),
		chain("t-leak", now-1000, hopTags{"frontend", "gray", ""}, hopTags{"pricing", "stable", ""}))
	jaeger := httptest.NewServer(store)
	defer jaeger.Close()
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL, JaegerUI: "http://127.0.0.1:16686"})
	f.login()
	_, page := f.do("GET", "/ui/chains", nil, nil)
	for _, want := range []string{`id="leaks">1<`, "↩ fallback: no-gray-version", "✕ leak", `href="http://127.0.0.1:16686/trace/t-leak"`, "newest 2 of 2 chains"} {
		if !strings.Contains(page, want) {
			t.Errorf("chains page lacks %q", want)
		}
	}
	if strings.Index(page, "t-leak") > strings.Index(page, "t-ok") {
		t.Error("chains are not newest first")
	}

	bare := newFixture(t, daemon.Options{}, Options{})
	bare.login()
	if _, page := bare.do("GET", "/ui/chains", nil, nil); !strings.Contains(page, "No Jaeger configured") {
		t.Error("chains page without Jaeger does not say so")
	}
}

type hopTags struct{ service, served, fallback string }

// chain is a trace with an edge decision for gray and one service span per
// hop, as the demo services report them.
func chain(id string, start int64, hops ...hopTags) tracecheck.Trace {
	const lane = "gray"
	t := tracecheck.Trace{TraceID: id, Processes: map[string]tracecheck.Process{"gm": {ServiceName: "graymesh"}}}
	t.Spans = append(t.Spans, tracecheck.Span{SpanID: id + "-d", OperationName: "graymesh.decision", StartTime: start, ProcessID: "gm",
		Tags: []tracecheck.Tag{{Key: "graymesh.hop", Value: "edge"}, {Key: "graymesh.env", Value: lane}, {Key: "graymesh.release", Value: "shop-v2"}, {Key: "graymesh.reason", Value: "whitelist"}}})
	for i, h := range hops {
		p := "p-" + h.service
		t.Processes[p] = tracecheck.Process{ServiceName: h.service}
		tags := []tracecheck.Tag{{Key: "graymesh.served_env", Value: h.served}, {Key: "graymesh.lane", Value: lane}}
		if h.fallback != "" {
			tags = append(tags, tracecheck.Tag{Key: "graymesh.fallback", Value: h.fallback})
		}
		t.Spans = append(t.Spans, tracecheck.Span{SpanID: id + "-" + h.service, OperationName: "GET /", StartTime: start + int64(i+1), ProcessID: p, Tags: tags})
	}
	return t
}

func TestObservedShare(t *testing.T) {
	o := &observer{}
	t0 := time.Now().Add(-3 * time.Minute)
	add := func(after time.Duration, version string, edge, gray float64) {
		o.samples = append(o.samples, sample{at: t0.Add(after), version: version, edge: edge, gray: map[string]float64{"r": gray}})
	}
	add(0, "1", 0, 0)
	add(time.Minute, "1", 100, 30)
	add(2*time.Minute, "2", 100, 30)
	add(2*time.Minute+30*time.Second, "2", 200, 80)
	add(3*time.Minute, "2", 300, 130)
	since, v := o.sinceVersion("r")
	if v != "2" || since.Total != 200 || since.Percent() != 50 {
		t.Fatalf("since version: %+v %s", since, v)
	}
	if w := o.window("r", time.Minute); w.Total != 200 || w.Gray != 100 {
		t.Fatalf("last minute: %+v", w)
	}
	if s := o.series("r", 20*time.Second); len(s) != 4 || s[0].Percent != 30 || s[1].Total != 0 || s[2].Percent != 50 {
		t.Fatalf("series: %+v", s)
	}
	if (share{}).Known() || (&observer{}).window("r", time.Minute).Known() {
		t.Fatal("an empty share is known")
	}
}

func TestChartKeepsItsPointsInside(t *testing.T) {
	now := time.Now()
	c := newChart([]point{{At: now.Add(-30 * time.Second), Percent: 30, Total: 100}, {At: now, Percent: 50, Total: 100}},
		[]targetAt{{At: now.Add(-40 * time.Second), Percent: 50}})
	if c.Empty || len(c.Dots) != 2 || c.Span != "1 min" || !strings.Contains(c.Summary, "between 30.0% and 50.0%") {
		t.Fatalf("chart %+v", c)
	}
	for _, d := range c.Dots {
		if d.X < c.Left || d.X > c.Right || d.Y < c.Top || d.Y > c.Bottom {
			t.Errorf("dot %+v outside the chart", d)
		}
	}
	if !strings.HasSuffix(c.Target, fmt.Sprintf(",%.1f", c.Dots[1].Y)) {
		t.Errorf("a point at the 50%% in force (y %.1f) is off its line %q", c.Dots[1].Y, c.Target)
	}
	if e := newChart(nil, nil); !e.Empty || len(e.Segments) != 0 {
		t.Fatalf("empty chart %+v", e)
	}
}

// The chart draws the percentage in force as it was (a kill drops it to
// 0), labels both axes, and breaks the observed line where an interval
// had no traffic instead of joining across it.
func TestChartDrawsTheTargetAsItWasAndBreaksOnGaps(t *testing.T) {
	now := time.Now()
	pts := []point{
		{At: now.Add(-50 * time.Second), Percent: 60, Total: 100},
		{At: now.Add(-40 * time.Second), Percent: 61, Total: 100},
		{At: now.Add(-30 * time.Second), Total: 0},
		{At: now.Add(-10 * time.Second), Percent: 0, Total: 100},
	}
	targets := []targetAt{{At: now.Add(-55 * time.Second), Percent: 60}, {At: now.Add(-35 * time.Second), Percent: 60}, {At: now.Add(-20 * time.Second), Percent: 0}}
	c := newChart(pts, targets)
	if len(c.Segments) != 2 || strings.Count(c.Segments[0], ",") != 2 || strings.Count(c.Segments[1], ",") != 1 {
		t.Errorf("observed segments %q: want the line broken at the interval without traffic", c.Segments)
	}
	y := func(p float64) string { return fmt.Sprintf(",%.1f", c.Top+(c.Bottom-c.Top)*(1-p/100)) }
	if !strings.Contains(c.Target, y(60)) || !strings.HasSuffix(c.Target, y(0)) {
		t.Errorf("target %q: want 60%% then 0%% after the kill", c.Target)
	}
	var labels []string
	for _, tk := range append(c.YTicks, c.XTicks...) {
		labels = append(labels, tk.Label)
	}
	if got := strings.Join(labels, " "); got != "0% 50% 100% −1 min −30 s now" {
		t.Errorf("axis labels %q", got)
	}
}

// A killed release admits nobody: the page says 0% in force, and why,
// whatever percentage it keeps for a revive.
func TestKilledReleaseShowsNothingInForce(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	f.login()
	if _, err := f.d.API().Act(context.Background(), control.Action{Release: "shop-v2", Kind: "kill", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	_, page := f.do("GET", "/ui/live/releases/shop-v2", nil, nil)
	if !strings.Contains(page, `<strong id="in-force">0%</strong>`) || !strings.Contains(page, "killed: everyone is served by stable") {
		t.Errorf("a killed release's page does not say 0%% in force and why:\n%s", page)
	}
	_, page = f.do("GET", "/ui/live/releases", nil, nil)
	if !strings.Contains(page, "<strong>0%</strong><br><span class=\"why\">killed") {
		t.Errorf("the releases page shows a killed release's percentage as in force:\n%s", page)
	}
}

func TestScheduleAndRefusedReload(t *testing.T) {
	past, next := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(3*time.Hour).UTC().Format(time.RFC3339)
	cfg := strings.Replace(testConfig, "percent: 30}", "percent: 5, schedule: [{at: "+past+", percent: 10}, {at: "+next+", percent: 50}]}", 1)
	f := newFixtureWith(t, cfg, daemon.Options{}, Options{})
	f.login()
	_, page := f.do("GET", "/ui/", nil, nil)
	for _, want := range []string{"step 1 of 2", "next: <strong>50%</strong>", "<strong>10%</strong>"} {
		if !strings.Contains(page, want) {
			t.Errorf("releases page lacks %q", want)
		}
	}
	_, page = f.do("GET", "/ui/releases/shop-v2", nil, nil)
	if !strings.Contains(page, "in force") || !strings.Contains(page, "to come") {
		t.Error("the release page's schedule does not say which step is in force and which is to come")
	}

	// A file that would evict is refused; the console says so, with why.
	must(t, os.WriteFile(f.path, []byte(strings.Replace(cfg, "whitelist: [alice], ", "", 1)), 0o600))
	if err := f.d.Reload(); err == nil {
		t.Fatal("an evicting file was accepted")
	}
	_, page = f.do("GET", "/ui/live/releases", nil, nil)
	if !strings.Contains(page, "The last change was refused") || !strings.Contains(page, `whitelist entry &#34;alice&#34; removed`) ||
		!regexp.MustCompile(`The last change was refused</strong> <time datetime="[0-9T:Z-]+"[^>]*>just now</time>`).MatchString(page) {
		t.Errorf("the refusal is not shown:\n%s", page)
	}
	_, page = f.do("GET", "/ui/releases/shop-v2", nil, nil)
	if !strings.Contains(page, "✕ refused") || !strings.Contains(page, ">file<") {
		t.Error("the refused file is not in the timeline")
	}
}

func TestConsoleIsOffWhereTheAdminAPIIs(t *testing.T) {
	cfg := strings.Replace(testConfig, "admin_listen: 127.0.0.1:18080", "admin_listen: 0.0.0.0:18080", 1)
	f := newFixtureWith(t, cfg, daemon.Options{}, Options{})
	if resp, _ := f.do("GET", "/ui/login", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("console beyond loopback without an admin token: %s", resp.Status)
	}
	tok := strings.Repeat("b2", 20)
	f = newFixtureWith(t, cfg, daemon.Options{AdminToken: tok}, Options{})
	// Beyond loopback with a token: any Host, the token to log in.
	if resp, _ := f.do("GET", "/ui/login", nil, map[string]string{"Host": "graymesh.internal:18080"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("console beyond loopback with an admin token: %s", resp.Status)
	}
	f.login()
}

// A kill (and a freeze) sends gray subjects back to stable without being
// an "eviction" the change gate refuses: the confirmation must say how many
// leave, never the all-clear.
func TestConfirmOfAKillSaysWhoLeavesGray(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{PreviewSample: 4000})
	f.login()
	_, page := f.do("GET", "/ui/releases/shop-v2/confirm?action=kill", nil, nil)
	if strings.Contains(page, "No subject leaves gray") {
		t.Errorf("a kill's confirmation shows the all-clear:\n%s", page)
	}
	if !strings.Contains(page, `id="leaving"`) || !regexp.MustCompile(`3\d\.\d\d% of subjects leave gray`).MatchString(page) {
		t.Errorf("a kill's confirmation does not say how many leave gray:\n%s", page)
	}
	_, page = f.do("GET", "/ui/releases/shop-v2/confirm?action=percent&value=50", nil, nil)
	if !strings.Contains(page, "No subject leaves gray") || strings.Contains(page, `id="leaving"`) {
		t.Errorf("a ramp's confirmation lacks the all-clear:\n%s", page)
	}
}

// An action given no reason records none: the timeline must not show a
// reason nobody gave.
func TestActionWithoutReasonRecordsNone(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{PreviewSample: 1000})
	csrf := f.login()
	if resp, _ := f.do("POST", "/ui/releases/shop-v2/act", url.Values{"csrf": {csrf}, "action": {"percent"}, "value": {"40"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ramp: %s", resp.Status)
	}
	if h := f.d.Pipeline().History("shop-v2"); len(h) == 0 || h[0].Reason != "" || h[0].Source != "console" {
		t.Fatalf("newest change %+v: want source console and no reason", h[0])
	}
}

// A decision that computed no bucket shows none, never "-1".
func TestExplainShowsNoBucketAsNone(t *testing.T) {
	f := newFixture(t, daemon.Options{}, Options{})
	csrf := f.login()
	_, page := f.do("POST", "/ui/explain", url.Values{"csrf": {csrf}, "subject": {"alice"}}, nil)
	if strings.Contains(page, `id="bucket">-1`) || !strings.Contains(page, "none: no percentage rule hashed this caller") {
		t.Errorf("explain of a whitelisted subject shows a bucket:\n%s", page)
	}
	_, page = f.do("POST", "/ui/explain", url.Values{"csrf": {csrf}, "subject": {"u7"}}, nil)
	if !regexp.MustCompile(`id="bucket">\d+ <span class="muted">of 0–9999`).MatchString(page) {
		t.Errorf("explain of a hashed subject shows no bucket:\n%s", page)
	}
}

// The observed share compares with the configured percentage only over
// the callers the percentage decided: anonymous callers and those admitted
// by a list or rule are shown apart, not mixed in as a shortfall.
func TestObservedShareIsOfTheHashedCallers(t *testing.T) {
	a := sample{gray: map[string]float64{}, hashed: map[string]float64{}, byPercent: map[string]float64{}, named: map[string]float64{}}
	b := sample{gray: map[string]float64{}, hashed: map[string]float64{}, byPercent: map[string]float64{}, named: map[string]float64{}}
	b.count("r", "gray", "percent", 30)
	b.count("r", "stable", "not-selected", 70)
	b.count("r", "gray", "whitelist", 20)
	b.count("r", "stable", "blacklisted", 10)
	b.count("", "", "no-identity", 170)
	s := between("r", a, b)
	if s.HashedPercent() != 30 || s.Hashed != 100 || s.Named != 20 || s.Anonymous != 170 || s.Total != 300 {
		t.Fatalf("share %+v: hashed %.1f%%", s, s.HashedPercent())
	}
	pages, err := parsePages()
	must(t, err)
	var buf bytes.Buffer
	row := releaseRow{ReleaseStatus: admin.ReleaseStatus{Name: "r", Percent: 30}, Since: s, SinceVersion: "1"}
	must(t, pages["releases"].ExecuteTemplate(&buf, "observed", row))
	for _, want := range []string{"<strong>30.0%</strong> <span class=\"muted\">of 100 callers its percentage decided", "20 admitted by name or rule", "170 without a usable identity", "16.7% of 300 edge decisions"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("observed share lacks %q:\n%s", want, buf.String())
		}
	}
}

// Stress-test requests are shown on their own line and in none of the
// share's counts: a shadow run at 0% must not read as gray admitting
// callers.
func TestStressLoadIsShownApartFromTheShare(t *testing.T) {
	reg := prometheus.NewRegistry()
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{Name: decisionsMetric}, []string{"hop", "release", "env", "reason"})
	stress := prometheus.NewCounterVec(prometheus.CounterOpts{Name: stressMetric}, []string{"hop", "release", "env", "reason"})
	reg.MustRegister(decisions, stress)
	gather := func(at time.Time) sample {
		fams, err := reg.Gather()
		must(t, err)
		s := newSample(at, "1")
		s.read(fams)
		return s
	}
	t0 := time.Now()
	a := gather(t0)
	decisions.WithLabelValues("edge", "r", "stable", "not-selected").Add(100)
	stress.WithLabelValues("edge", "r", "gray", "stress").Add(500)
	stress.WithLabelValues("inner", "r", "gray", "lane").Add(900)
	s := between("r", a, gather(t0.Add(time.Minute)))
	if s.Gray != 0 || s.Total != 100 || s.HashedPercent() != 0 || s.Stress != 500 {
		t.Fatalf("share %+v: shadow load counted as callers, or not counted apart", s)
	}
	pages, err := parsePages()
	must(t, err)
	var buf bytes.Buffer
	row := releaseRow{ReleaseStatus: admin.ReleaseStatus{Name: "r"}, Since: s, Window: s, SinceVersion: "1"}
	must(t, pages["releases"].ExecuteTemplate(&buf, "observed", row))
	for _, want := range []string{"<strong>0.0%</strong>", "stress test: 500 shadow requests since version 1, in none of the counts above (500 in the last minute)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("observed share lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	row.Since, row.Window = between("r", a, a), between("r", a, a)
	must(t, pages["releases"].ExecuteTemplate(&buf, "observed", row))
	if strings.Contains(buf.String(), "stress test") {
		t.Errorf("a stress line without shadow load:\n%s", buf.String())
	}
}

// The observed share counts graymesh's decisions; requests the edge's
// Envoy routes itself (returning callers on their proofs, anonymous
// requests it splits) are in none of them, and the share says so — and
// says nothing of the kind when Envoy routes nothing itself.
func TestObservedShareNamesWhatEnvoyRoutesItself(t *testing.T) {
	pages, err := parsePages()
	must(t, err)
	render := func(row releaseRow) string {
		var buf bytes.Buffer
		must(t, pages["releases"].ExecuteTemplate(&buf, "observed", row))
		return buf.String()
	}
	row := releaseRow{ReleaseStatus: admin.ReleaseStatus{Name: "r", Percent: 30}, SinceVersion: "1"}
	if got := render(row); strings.Contains(got, "envoy-routes") {
		t.Errorf("a line on what Envoy routes itself while it routes nothing:\n%s", got)
	}
	row.EnvoyRoutes = envoyRoutes(true, true)
	got := render(row)
	for _, want := range []string{"not in these counts", "the requests of returning callers carrying their proofs", "the anonymous requests it splits for this release"} {
		if !strings.Contains(got, want) {
			t.Errorf("observed share lacks %q:\n%s", want, got)
		}
	}
	if envoyRoutes(false, false) != "" || strings.Contains(envoyRoutes(true, false), "anonymous") {
		t.Errorf("envoyRoutes names what Envoy does not route: %q, %q", envoyRoutes(false, false), envoyRoutes(true, false))
	}
}
