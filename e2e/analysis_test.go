package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// analysisLoad sends requests through Envoy for many subjects until
// stopped, a deadline or a request budget: answers of any status count
// (a spoiled gray answers 500 on purpose).
type analysisLoad struct {
	stop     chan struct{}
	done     sync.WaitGroup
	sent     atomic.Int64
	statuses sync.Map // status code → *atomic.Int64
}

func startAnalysisLoad(t *testing.T, m *mesh, workers, subjects int) *analysisLoad {
	t.Helper()
	return startAnalysisLoadOn(t, m, workers, subjects, func(int) string { return "/" })
}

// startAnalysisLoadOn is startAnalysisLoad with worker request i sent to
// pathOf(i).
func startAnalysisLoadOn(t *testing.T, m *mesh, workers, subjects int, pathOf func(i int) string) *analysisLoad {
	t.Helper()
	tokens := make([]string, subjects)
	for i := range tokens {
		tokens[i] = m.token(fmt.Sprintf("analysis-user-%d", i), time.Now().Add(time.Hour))
	}
	l := &analysisLoad{stop: make(chan struct{})}
	deadline := time.Now().Add(3 * time.Minute)
	for w := 0; w < workers; w++ {
		l.done.Add(1)
		go func(w int) {
			defer l.done.Done()
			for i := 0; i < 200_000 && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, m.listener+pathOf(i), nil)
				req.Header.Set("Authorization", "Bearer "+tokens[(w*7919+i)%len(tokens)])
				resp, err := m.client.Do(req)
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				n, _ := l.statuses.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				l.sent.Add(1)
			}
		}(w)
	}
	t.Cleanup(l.finish)
	return l
}

func (l *analysisLoad) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

func (l *analysisLoad) String() string {
	var parts []string
	l.statuses.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%v: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	return fmt.Sprintf("%d requests (%s)", l.sent.Load(), strings.Join(parts, ", "))
}

// analysisOf reads a release's analysis from the admin API.
func analysisOf(t *testing.T, adminURL, release string) admin.AnalysisStatus {
	t.Helper()
	resp, err := http.Get(adminURL + "/v1/releases/" + release + "/analysis?windows=100")
	must(t, err)
	defer resp.Body.Close()
	var st admin.AnalysisStatus
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("analysis of %s: %s %s", release, resp.Status, b)
	}
	must(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// analysisCLI runs `graymesh analysis RELEASE` against the admin API.
func analysisCLI(t *testing.T, adminURL, release string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), append([]string{"analysis", release, "--admin", adminURL}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("graymesh analysis %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// grayAddress is the gray demo-service's address in the mesh's config.
func (m *mesh) grayAddress(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(m.configPath)
	must(t, err)
	return regexp.MustCompile(`gray: \[(127\.0\.0\.1:\d+)\]`).FindStringSubmatch(string(b))[1]
}

// spoil injects a fault into a demo-service at addr (POST /fault).
func spoil(t *testing.T, addr, query string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/fault?"+query, "", nil)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fault %s: %s %s", query, resp.Status, b)
	}
}

// waitForRelease polls the analysis until ok says the release is where
// the test wants it.
func waitForRelease(t *testing.T, adminURL, what string, timeout time.Duration, ok func(admin.AnalysisStatus) bool) admin.AnalysisStatus {
	t.Helper()
	var st admin.AnalysisStatus
	waitFor(t, what, timeout, func() error {
		st = analysisOf(t, adminURL, "shop-v2")
		if ok(st) {
			return nil
		}
		return fmt.Errorf("state %s, percent %g, step %d, %d windows, last %s", st.State, st.Percent, st.ScheduleStep, len(st.Windows), lastWindow(st))
	})
	return st
}

func lastWindow(st admin.AnalysisStatus) string {
	if len(st.Windows) == 0 {
		return "none"
	}
	w := st.Windows[len(st.Windows)-1]
	return fmt.Sprintf("%s (%s) → %s", w.Verdict, w.Reason, w.Action)
}

// gated is the index of the first window whose both sides passed the
// sample gate (0 if none): the first that could judge at all.
func gated(st admin.AnalysisStatus, minRequests int) int {
	for _, w := range st.Windows {
		if len(w.Services) > 0 && w.Services[0].Gray.Requests >= minRequests && w.Services[0].Stable.Requests >= minRequests {
			return w.Index
		}
	}
	return 0
}

const analysisLane = `
lane: {key: "e2e-lane-key-0123456789abcdef-0123456789"}
membership: {enabled: true}
`

func TestAnalysisAdvancesAHealthyGrayThroughItsSchedule(t *testing.T) {
	m := newMesh(t, analysisLane+`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 20
    schedule:
      - {at: 2020-01-01T00:00:00Z, percent: 40}
      - {at: 2020-01-01T00:01:00Z, percent: 60}
    analysis: {interval: 1s, min_requests: 30}
`)
	if st := analysisOf(t, m.admin, "shop-v2"); st.Percent != 20 || st.ScheduleStep != -1 || st.ScheduleSteps != 2 {
		t.Fatalf("before any window: percent %g, step %d of %d; the schedule must wait for the analysis", st.Percent, st.ScheduleStep, st.ScheduleSteps)
	}
	load := startAnalysisLoad(t, m, 3, 300)
	st := waitForRelease(t, m.admin, "the schedule's last step", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.ScheduleStep == 1 })
	load.finish()
	t.Logf("%s; %d windows", load, len(st.Windows))
	advances := 0
	for _, w := range st.Windows {
		switch {
		case w.Verdict == analysis.Fail || w.Verdict == analysis.Critical:
			t.Fatalf("window %d judged a healthy gray %s: %s", w.Index, w.Verdict, w.Reason)
		case strings.HasPrefix(w.Action, "advance"):
			advances++
			if w.Verdict != analysis.Pass {
				t.Fatalf("window %d advanced on %s", w.Index, w.Verdict)
			}
		}
	}
	if advances != 2 || st.Percent != 60 {
		t.Fatalf("%d advances, percent %g", advances, st.Percent)
	}
	out := analysisCLI(t, m.admin, "shop-v2", "--windows", "100")
	for _, want := range []string{"advance to schedule[0] (40%)", "advance to schedule[1] (60%)", "verdict: PASS", analysis.MethodSequential, "of distinct callers"} {
		if !strings.Contains(out, want) {
			t.Errorf("graymesh analysis lacks %q:\n%s", want, out)
		}
	}
	metrics := getMetrics(t, m.admin)
	for _, want := range []string{`graymesh_analysis_verdicts_total{release="shop-v2",verdict="pass"}`, `graymesh_analysis_gray_share_percent{kind="callers",release="shop-v2",service="shop"}`, `graymesh_analysis_p_value{metric="latency",release="shop-v2",service="shop"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func getMetrics(t *testing.T, adminURL string) string {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestAnalysisFreezesAGrayWithFivePointsMoreErrors(t *testing.T) {
	// 200 a side: 10 failures against none is significant at the
	// window's alpha (Fisher p ≈ 0.0009), so the first window with enough
	// data already fails.
	const minRequests = 200
	m := newMesh(t, analysisLane+`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 50
    analysis: {interval: 2s, min_requests: 200, on_fail: freeze}
`)
	spoil(t, m.grayAddress(t), "error_rate=0.05")
	load := startAnalysisLoad(t, m, 3, 300)
	st := waitForRelease(t, m.admin, "the freeze", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.State == "frozen" })
	load.finish()
	first := gated(st, minRequests)
	var fail *admin.Window
	for i := range st.Windows {
		if st.Windows[i].Verdict == analysis.Fail {
			fail = &st.Windows[i]
			break
		}
	}
	if fail == nil || fail.Action != "freeze" || !strings.Contains(fail.Reason, "shop: errors: ") {
		t.Fatalf("no fail window that froze: %+v", st.Windows)
	}
	t.Logf("%s; first window with enough data %d, frozen by window %d: %s", load, first, fail.Index, fail.Reason)
	if first == 0 || fail.Index > first+1 {
		t.Fatalf("frozen at window %d; the first with enough data was %d: not within two windows", fail.Index, first)
	}
	out := analysisCLI(t, m.admin, "shop-v2", "--until", "fail", "--windows", "100")
	for _, want := range []string{"verdict: FAIL — shop: errors: gray", "action:  freeze", "state frozen"} {
		if !strings.Contains(out, want) {
			t.Errorf("graymesh analysis lacks %q:\n%s", want, out)
		}
	}
}

func TestAnalysisRollsBackAGray50msSlower(t *testing.T) {
	m := newMesh(t, analysisLane+`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 50
    analysis: {interval: 2s, min_requests: 30}
`)
	spoil(t, m.grayAddress(t), "latency=50ms")
	load := startAnalysisLoad(t, m, 6, 300)
	st := waitForRelease(t, m.admin, "the rollback", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.Percent == 0 })
	load.finish()
	var fail *admin.Window
	for i := range st.Windows {
		if st.Windows[i].Verdict == analysis.Fail {
			fail = &st.Windows[i]
			break
		}
	}
	if fail == nil || fail.Action != "rollback" || !strings.Contains(fail.Reason, "shop: latency p") {
		t.Fatalf("no latency fail that rolled back: %+v", st.Windows)
	}
	for _, test := range fail.Services[0].Tests {
		if test.Metric == "latency" && test.Verdict == analysis.Fail && (test.Effect < 40 || test.Method != analysis.MethodSequential) {
			t.Fatalf("latency %s shift %.1f ms by %s, want about 50", test.Name(), test.Effect, test.Method)
		}
	}
	t.Logf("%s; rolled back at window %d: %s", load, fail.Index, fail.Reason)
	// The rollback is declared, with the verdict as its reason.
	lr := m.status(t)["last_reload"].(map[string]any)
	if lr["source"] != "analysis" || !strings.Contains(fmt.Sprint(lr["reason"]), "analysis of shop-v2: fail — shop: latency p") {
		t.Fatalf("last change %v", lr)
	}
}

func TestAnalysisWithoutGrayTrafficIsInconclusiveAndHolds(t *testing.T) {
	m := newMesh(t, `
releases:
  - name: shop-v2
    env: gray
    whitelist: [someone-who-never-calls]
    percent: 0
    schedule:
      - {at: 2020-01-01T00:00:00Z, percent: 10}
      - {at: 2020-01-01T00:01:00Z, percent: 50}
    analysis: {interval: 1s, min_requests: 20}
`)
	load := startAnalysisLoad(t, m, 2, 100)
	st := waitForRelease(t, m.admin, "four windows", 60*time.Second, func(st admin.AnalysisStatus) bool {
		return len(st.Windows) >= 4 && st.Windows[len(st.Windows)-1].Services[0].Stable.Requests >= 20
	})
	load.finish()
	for _, w := range st.Windows {
		if w.Verdict != analysis.Inconclusive || w.Action != "hold" || w.Services[0].Gray.Requests != 0 {
			t.Fatalf("window %d: %s → %s (gray %d requests)", w.Index, w.Verdict, w.Action, w.Services[0].Gray.Requests)
		}
	}
	if st.Percent != 0 || st.ScheduleStep != -1 {
		t.Fatalf("percent %g, step %d: the schedule advanced without evidence", st.Percent, st.ScheduleStep)
	}
	t.Logf("%s; %d windows, all inconclusive: %s", load, len(st.Windows), st.Windows[len(st.Windows)-1].Reason)
}

// TestAnalysisKillStopsLanesAlreadyTravelling: a critical verdict kills
// the release with the admin API's kill, so a lane the edge signed before
// it is no longer honoured by an inner hop.
func TestAnalysisKillStopsLanesAlreadyTravelling(t *testing.T) {
	m := newFourHop(t, func(cfg string) string {
		return strings.Replace(cfg, "    percent: 50\n", "    percent: 50\n    analysis: {interval: 2s, min_requests: 20, services: [frontend], errors: {critical: 10}}\n", 1)
	})
	signer, err := lane.NewSigner([]byte(m.laneKey), 5*time.Minute)
	must(t, err)
	travelling := signer.Sign("gray", "shop-v2", "1", time.Now())
	orders := fmt.Sprintf("http://127.0.0.1:%d", m.ports[10002])
	inner := func() chainReply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, orders+"/", nil)
		req.Header.Set(wire.HeaderLane, travelling)
		resp, err := m.client.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var r chainReply
		must(t, json.NewDecoder(resp.Body).Decode(&r))
		return r
	}
	if r := inner(); r.Env != "gray" || r.Gray["x-gray-reason"] != "lane" {
		t.Fatalf("orders before the kill: %s %v", r.Env, r.Gray)
	}
	spoil(t, fmt.Sprintf("127.0.0.1:%d", m.ports[9207]), "error_rate=0.5") // frontend v2 (gray)
	load := startAnalysisLoad(t, m.mesh, 3, 200)
	st := waitForRelease(t, m.admin, "the kill", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.State == "killed" })
	load.finish()
	last := st.Windows[len(st.Windows)-1]
	if last.Verdict != analysis.Critical || last.Action != "kill" {
		t.Fatalf("killed by window %d: %s → %s", last.Index, last.Verdict, last.Action)
	}
	t.Logf("%s; killed at window %d: %s", load, last.Index, last.Reason)
	if r := inner(); r.Env != "stable" || r.Gray["x-gray-reason"] != "killed" {
		t.Fatalf("orders after the analysis killed the release, same lane: %s %v", r.Env, r.Gray)
	}
}

// firstFail is the first window judged fail, nil if none.
func firstFail(st admin.AnalysisStatus) *admin.Window {
	for i := range st.Windows {
		if st.Windows[i].Verdict == analysis.Fail {
			return &st.Windows[i]
		}
	}
	return nil
}

// testNamed is the window's test of the first service named name ("latency
// p99", "errors on /checkout/pay"), nil if it ran none.
func testNamed(w admin.Window, name string) *analysis.TestResult {
	if len(w.Services) == 0 {
		return nil
	}
	for i, test := range w.Services[0].Tests {
		if test.Name() == name {
			return &w.Services[0].Tests[i]
		}
	}
	return nil
}

// TestAnalysisRollsBackAGrayWithASlowTail: 2% of gray's requests, picked
// at random, 300 ms slower, its median unchanged. The median test cannot
// see it; the p99 test must.
func TestAnalysisRollsBackAGrayWithASlowTail(t *testing.T) {
	m := newMesh(t, analysisLane+`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 50
    analysis: {interval: 2s, min_requests: 30}
`)
	spoil(t, m.grayAddress(t), "spread=random&slow_share=0.02&slow_delay=300ms")
	// A slow request holds its worker 300 ms: more workers keep the rate up.
	load := startAnalysisLoad(t, m, 8, 300)
	st := waitForRelease(t, m.admin, "the rollback", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.Percent == 0 })
	load.finish()
	fail := firstFail(st)
	if fail == nil || fail.Action != "rollback" || !strings.Contains(fail.Reason, "shop: latency p99: ") {
		t.Fatalf("no p99 fail that rolled back: %+v", st.Windows)
	}
	p99 := testNamed(*fail, "latency p99")
	if p99 == nil || p99.Verdict != analysis.Fail || p99.Effect < 100 {
		t.Fatalf("the p99 test in window %d: %+v; want a fail by 100 ms or more", fail.Index, p99)
	}
	for _, w := range st.Windows {
		if p50 := testNamed(w, "latency p50"); p50 != nil && p50.Verdict == analysis.Fail {
			t.Fatalf("window %d failed the median (%+v): the median did not move", w.Index, p50)
		}
	}
	g, s := fail.Services[0].Gray, fail.Services[0].Stable
	t.Logf("%s; rolled back at window %d: %s; that window gray p50 %.1f ms p99 %.1f ms, stable p50 %.1f ms p99 %.1f ms",
		load, fail.Index, fail.Reason, g.P50, g.P99, s.P50, s.P99)
}

// TestAnalysisRollsBackAGrayFailingOnOneRoute: gray fails 32% of the
// requests on /checkout, a route carrying 1% of the traffic: 0.3 points on
// the whole service, under its 1-point tolerance, so only the route
// group's own test can fail it. Critical is off: 32 points on the route
// would be critical (≥ 20) and kill, and this test is about the fail.
func TestAnalysisRollsBackAGrayFailingOnOneRoute(t *testing.T) {
	m := newMesh(t, analysisLane+`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 50
    analysis: {interval: 2s, min_requests: 30, errors: {critical: 0}}
`)
	spoil(t, m.grayAddress(t), "spread=random&path=/checkout&path_error_rate=0.32")
	// 307 subjects, prime, so every 100th request of a worker still walks
	// through all subjects (and both sides) rather than a few of them.
	load := startAnalysisLoadOn(t, m, 4, 307, func(i int) string {
		if i%100 == 0 {
			return "/checkout/pay"
		}
		return "/cart/42"
	})
	st := waitForRelease(t, m.admin, "the rollback", 90*time.Second, func(st admin.AnalysisStatus) bool { return st.Percent == 0 })
	load.finish()
	fail := firstFail(st)
	if fail == nil || fail.Action != "rollback" || !strings.Contains(fail.Reason, "shop: errors on /checkout/pay: ") {
		t.Fatalf("no fail on /checkout/pay that rolled back: %+v", st.Windows)
	}
	route := testNamed(*fail, "errors on /checkout/pay")
	if route == nil || route.Verdict != analysis.Fail || route.Route != "/checkout/pay" {
		t.Fatalf("the route group's test in window %d: %+v", fail.Index, route)
	}
	for _, other := range []string{"errors on /cart/:id"} {
		if test := testNamed(*fail, other); test == nil || test.Verdict == analysis.Fail {
			t.Fatalf("%s in window %d: %+v; that route is healthy", other, fail.Index, test)
		}
	}
	service := testNamed(*fail, "errors")
	if service == nil || service.Verdict == analysis.Fail {
		t.Fatalf("the service-wide errors test in window %d: %+v; diluted to 0.3 points it must not be what fails", fail.Index, service)
	}
	t.Logf("%s; rolled back at window %d: %s; the service-wide errors test: %s, effect %+.2f points, threshold %.2f",
		load, fail.Index, fail.Reason, service.Verdict, service.Effect, service.Threshold)
}
