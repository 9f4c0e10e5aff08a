package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// findPrometheus is the Prometheus server scripts/install-prometheus.sh
// installs (PROMETHEUS_BIN, /usr/bin/prometheus, PATH).
func findPrometheus() (string, error) {
	candidates := []string{os.Getenv("PROMETHEUS_BIN"), "/usr/bin/prometheus"}
	if p, err := exec.LookPath("prometheus"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "--version").CombinedOutput(); err == nil && strings.HasPrefix(string(out), "prometheus, version") {
			return c, nil
		}
	}
	return "", fmt.Errorf("no Prometheus server found (PROMETHEUS_BIN, /usr/bin/prometheus, PATH)")
}

// promScrapeConfig scrapes every Envoy's /stats/prometheus twice a second:
// a window of the analysis needs at least two samples of each counter.
const promScrapeConfig = `global: {scrape_interval: 500ms, scrape_timeout: 400ms}
scrape_configs:
  - job_name: e2e-envoy
    metrics_path: /stats/prometheus
    static_configs:
      - targets: [%s]
`

// prometheusServer is a real Prometheus on a loopback port, with its own
// config and data directory.
type prometheusServer struct {
	bin, dir, addr string
	proc           *process
	starts         int
}

func startPrometheus(t *testing.T, dir string, port int, targets []string) *prometheusServer {
	t.Helper()
	bin, err := findPrometheus()
	if err != nil {
		missingPart(t, err, "make prometheus")
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = "'" + tg + "'"
	}
	must(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, promScrapeConfig, strings.Join(quoted, ", ")), 0o600))
	p := &prometheusServer{bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	p.start(t)
	return p
}

func (p *prometheusServer) start(t *testing.T) {
	t.Helper()
	p.starts++
	p.proc = start(t, p.dir, fmt.Sprintf("prometheus-%d", p.starts), p.bin,
		"--config.file", filepath.Join(p.dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(p.dir, "prom-data"),
		"--web.listen-address", p.addr)
	waitFor(t, "prometheus", 30*time.Second, httpOK("http://"+p.addr+"/-/ready"))
}

// upTargets is how many of the scrape job's targets Prometheus last
// scraped successfully.
func (p *prometheusServer) upTargets() (int, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(`sum(up{job="e2e-envoy"})`))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("up: %d results: %w", len(r.Data.Result), err)
	}
	var n int
	_, err = fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &n)
	return n, err
}

// startSecondEnvoy starts another Envoy of the mesh, fed by the same
// graymesh: Envoy binds its listeners with SO_REUSEPORT (its default on
// Linux), so the kernel spreads new connections over both Envoys, one
// fleet of two nodes. It returns its admin address.
func (m *mesh) startSecondEnvoy(t *testing.T) string {
	t.Helper()
	cfg, err := os.ReadFile(m.configPath)
	must(t, err)
	var xdsPort uint32
	_, err = fmt.Sscan(regexp.MustCompile(`xds_listen: 127\.0\.0\.1:(\d+)`).FindStringSubmatch(string(cfg))[1], &xdsPort)
	must(t, err)
	adminPort := freePort(t)
	b, err := envoy.Load("bootstrap.yaml")
	must(t, err)
	boot, err := envoy.Render(b, envoy.Overrides{NodeID: t.Name() + "-2", AdminPort: uint32(adminPort), XDSHost: "127.0.0.1", XDSPort: xdsPort})
	must(t, err)
	path := filepath.Join(m.dir, "envoy-2.json")
	must(t, os.WriteFile(path, boot, 0o600))
	start(t, m.dir, "envoy-2", envoyBin, "-c", path, "--disable-hot-restart", "--concurrency", "1", "-l", "info")
	addr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	waitFor(t, "second envoy's listener", 20*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/listeners")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if port := m.listener[strings.LastIndex(m.listener, ":"):]; !strings.Contains(string(body), port) {
			return fmt.Errorf("no listener on %s yet: %s", port, body)
		}
		return nil
	})
	return addr
}

// servedRequests is how many requests an Envoy sent to shop's stable and
// gray clusters, from its admin stats.
func servedRequests(adminAddr string) (int, error) {
	resp, err := http.Get("http://" + adminAddr + "/stats?filter=^cluster%5C.shop.*upstream_rq_total$")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0
	for _, line := range strings.Split(string(body), "\n") {
		var n int
		if i := strings.LastIndex(line, ": "); i > 0 {
			if _, err := fmt.Sscan(line[i+2:], &n); err == nil {
				total += n
			}
		}
	}
	return total, nil
}

// firstPass is the first passing window of a healthy gray; any fail is
// fatal.
func firstPass(t *testing.T, st admin.AnalysisStatus) *admin.Window {
	t.Helper()
	var passed *admin.Window
	for i := range st.Windows {
		w := &st.Windows[i]
		if w.Verdict == analysis.Fail || w.Verdict == analysis.Critical {
			t.Fatalf("window %d judged a healthy gray %s: %s", w.Index, w.Verdict, w.Reason)
		}
		if w.Verdict == analysis.Pass && passed == nil {
			passed = w
		}
	}
	return passed
}

// TestAnalysisFromPrometheus judges a release on a real Prometheus
// scraping two real Envoys: a healthy gray passes and takes its schedule
// step; with Prometheus stopped every window is inconclusive and holds,
// saying why; with Prometheus back and gray failing 10% of its requests,
// the analysis rolls it back.
func TestAnalysisFromPrometheus(t *testing.T) {
	if _, err := findPrometheus(); err != nil {
		missingPart(t, err, "make prometheus")
	}
	promPort := freePort(t)
	m := newMesh(t, analysisLane+fmt.Sprintf(`
releases:
  - name: shop-v2
    env: gray
    salt: e2e-analysis
    percent: 50
    schedule:
      - {at: 2020-01-01T00:00:00Z, percent: 60}
    analysis:
      interval: 2s
      min_requests: 30
      source: prometheus
      prometheus_url: http://127.0.0.1:%d
      prometheus_labels: {job: e2e-envoy}
`, promPort))
	envoy2 := m.startSecondEnvoy(t)
	envoy1 := strings.TrimPrefix(m.envoyAdmin, "http://")
	prom := startPrometheus(t, m.dir, promPort, []string{envoy1, envoy2})
	waitFor(t, "prometheus scraping both envoys", 20*time.Second, func() error {
		if n, err := prom.upTargets(); err != nil || n != 2 {
			return fmt.Errorf("%d targets up: %w", n, err)
		}
		return nil
	})
	// A new connection per request, so the kernel spreads the load over
	// both Envoys' listening sockets.
	m.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	load := startAnalysisLoad(t, m, 3, 300)

	st := waitForRelease(t, m.admin, "the healthy gray's step", 60*time.Second, func(st admin.AnalysisStatus) bool { return st.ScheduleStep == 0 })
	passed := firstPass(t, st)
	if passed == nil || !strings.HasPrefix(passed.Action, "advance") || passed.Services[0].Gray.Requests < 30 || passed.Services[0].Stable.Requests < 30 {
		t.Fatalf("no passing window that advanced: %+v", st.Windows)
	}
	for _, addr := range []string{envoy1, envoy2} {
		if n, err := servedRequests(addr); err != nil || n == 0 {
			t.Fatalf("envoy %s served %d requests (%v): the fleet is one Envoy", addr, n, err)
		}
	}
	t.Logf("passed window %d: gray %d, stable %d requests, fleet-wide from Prometheus", passed.Index,
		passed.Services[0].Gray.Requests, passed.Services[0].Stable.Requests)

	prom.proc.kill()
	stoppedAt := len(st.Windows)
	st = waitForRelease(t, m.admin, "windows with Prometheus down", 30*time.Second, func(st admin.AnalysisStatus) bool {
		down := 0
		for _, w := range st.Windows[stoppedAt:] {
			if strings.Contains(w.Error, "prometheus unreachable") {
				down++
			}
		}
		return down >= 2
	})
	for _, w := range st.Windows {
		if w.Error != "" && (w.Verdict != analysis.Inconclusive || w.Action != "hold") {
			t.Fatalf("window %d without observations (%s) was %s → %s", w.Index, w.Error, w.Verdict, w.Action)
		}
	}

	prom.start(t)
	spoil(t, m.grayAddress(t), "error_rate=0.1")
	st = waitForRelease(t, m.admin, "the rollback", 60*time.Second, func(st admin.AnalysisStatus) bool { return st.Percent == 0 })
	load.finish()
	var fail *admin.Window
	for i := range st.Windows {
		if st.Windows[i].Verdict == analysis.Fail || st.Windows[i].Verdict == analysis.Critical {
			fail = &st.Windows[i]
			break
		}
	}
	if fail == nil || !strings.Contains(fail.Reason, "shop: errors") || fail.Error != "" {
		t.Fatalf("no errors fail from Prometheus's evidence: %+v", st.Windows)
	}
	t.Logf("%s; %s at window %d: %s → %s", load, fail.Verdict, fail.Index, fail.Reason, fail.Action)
}
