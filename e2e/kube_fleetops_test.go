package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// fleetOf reads GET /v1/releases/{name}/fleet from the node's admin API
// (loopback, no admin token): what the console's Nodes section shows.
func (nd *fleetNode) fleetOf(name string) (admin.FleetRelease, error) {
	var fr admin.FleetRelease
	resp, err := nd.client.Get(nd.admin + "/v1/releases/" + name + "/fleet")
	if err != nil {
		return fr, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fr, fmt.Errorf("%s: fleet of %s: %s %s", nd.name, name, resp.Status, b)
	}
	return fr, json.NewDecoder(resp.Body).Decode(&fr)
}

// checkFleetRefused: every node refused generation gen of checkout; the
// status counts them and names them with the reason, and the fleet view
// lists each node's refusal beside the generation it keeps in force.
func checkFleetRefused(t *testing.T, k *kubeCP, nodes []*fleetNode, gen, kept int64, reason string) {
	t.Helper()
	waitFor(t, "status counts the refusing nodes", 30*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		st, _ := obj["status"].(map[string]any)
		by, _ := st["refusedBy"].([]any)
		if n, _ := st["nodesRefused"].(float64); int(n) != len(nodes) || len(by) != len(nodes) {
			return fmt.Errorf("nodesRefused %v, refusedBy %v", st["nodesRefused"], by)
		}
		first, _ := by[0].(map[string]any)
		if first["node"] != "node-0" || !strings.Contains(fmt.Sprint(first["reason"]), reason) {
			return fmt.Errorf("refusedBy[0] %v", first)
		}
		return nil
	})
	waitFor(t, "fleet view lists each node's refusal", 30*time.Second, func() error {
		fr, err := nodes[0].fleetOf("checkout")
		if err != nil {
			return err
		}
		if fr.Generation != gen || fr.Accepted != "False" || len(fr.NodeList) != len(nodes) {
			return fmt.Errorf("fleet view %+v", fr)
		}
		for _, n := range fr.NodeList {
			if n.Generation != kept || n.RefusedGeneration != gen || !strings.Contains(n.Refused, reason) {
				return fmt.Errorf("node %+v", n)
			}
		}
		return nil
	})
}

// consolePage logs in to the node's console with the console token its
// state directory holds and returns the page at path.
func (nd *fleetNode) consolePage(t *testing.T, path string) string {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(nd.dir, "state", "console-token"))
	must(t, err)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	read := func(resp *http.Response, err error) string {
		t.Helper()
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := regexp.MustCompile(`name="login_csrf" value="([0-9a-f]+)"`).FindStringSubmatch(read(c.Get(nd.admin + "/ui/login")))
	if m == nil {
		t.Fatalf("%s: no console login form", nd.name)
	}
	read(c.PostForm(nd.admin+"/ui/login", url.Values{"login_csrf": {m[1]}, "token": {strings.TrimSpace(string(tok))}}))
	return read(c.Get(nd.admin + path))
}

// checkConsoleFleet: the release page of one node's console shows the
// whole fleet serving generation gen.
func checkConsoleFleet(t *testing.T, nd *fleetNode, n int, gen int64) {
	t.Helper()
	page := nd.consolePage(t, "/ui/releases/checkout")
	want := []string{fmt.Sprintf("GrayRelease generation %d", gen), fmt.Sprintf("nodes serving / reporting <strong>%d/%d</strong>", n, n)}
	for i := range n {
		want = append(want, fmt.Sprintf("<td>node-%d</td><td>%d ✓</td>", i, gen))
	}
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("console release page of %s lacks %q", nd.name, w)
		}
	}
}

// fleetLoad sends requests for 400 devices through every node's Envoy
// until stopped: answers of any status count (a spoiled gray answers 500).
func fleetLoad(t *testing.T, nodes []*fleetNode) (stop func()) {
	t.Helper()
	const devices = 400
	done, quit := sync.WaitGroup{}, make(chan struct{})
	deadline := time.Now().Add(2 * time.Minute)
	for _, nd := range nodes {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				select {
				case <-quit:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, nd.listener+"/", nil)
				req.Header.Set("Cookie", fmt.Sprintf("gm_device=load-%d", i%devices))
				if resp, err := nd.client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); done.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestKubeAnalysisKillsTheFleet: in Kubernetes mode a release's analysis
// acts on the GrayRelease. Gray answers 30% of requests with 500; the
// nodes publish their Envoys' evidence and the fleet's one analyser
// judges it merged: the verdict kills the release by one patch (the
// object ends one generation later, its reason naming the analyser and
// the nodes), every node shows the same fleet windows, and every node
// serves stable.
func TestKubeAnalysisKillsTheFleet(t *testing.T) {
	const n = 3
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, n)
	b, err := os.ReadFile(filepath.Join(nodes[0].dir, "graymesh.yaml"))
	must(t, err)
	grayAddr := regexp.MustCompile(`gray: \[(127\.0\.0\.1:\d+)\]`).FindStringSubmatch(string(b))[1]

	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 50\n  analysis: {interval: 2s, min_requests: 40, on_fail: kill, on_critical: kill}\n"), "apply", "-f", "-")
	eachNode(t, "release in force", nodes, func(nd *fleetNode) error {
		st, err := nd.status()
		if err != nil {
			return err
		}
		if v, _ := st["config_version"].(string); v != "1" {
			return fmt.Errorf("%s: config_version %v", nd.name, st["config_version"])
		}
		return nil
	})
	spoil(t, grayAddr, "error_rate=0.3")
	stop := fleetLoad(t, nodes)
	waitFor(t, "the GrayRelease killed by an analysis", 90*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		spec, _ := obj["spec"].(map[string]any)
		if spec["state"] != "killed" {
			return fmt.Errorf("spec.state %v", spec["state"])
		}
		return nil
	})
	stop()
	obj, err := k.release("checkout")
	must(t, err)
	spec, _ := obj["spec"].(map[string]any)
	change, _ := spec["change"].(map[string]any)
	reason := fmt.Sprint(change["reason"])
	if !regexp.MustCompile(`^fleet analysis by node-\d: (fail|critical) — shop: errors: .*\([1-3] of 3 nodes\)$`).MatchString(reason) {
		t.Errorf("change.reason %q does not name the analyser, the analysis and the nodes", reason)
	}
	if g := generation(obj); g != 2 {
		t.Errorf("generation %d after the kill, want 2: the analysis patched more than once", g)
	}
	t.Logf("killed by: %s", reason)
	checkOnePatch(t, nodes, "checkout")
	eachNode(t, "every node serves stable", nodes, func(nd *fleetNode) error {
		for d := range 20 {
			if err := nd.serves(fmt.Sprintf("after-%d", d), "stable", "2"); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestKubeAnalysisAdvancesTheFleet: a healthy gray's passing windows,
// judged by the fleet's one analyser on every node's evidence, take the
// schedule's steps on the GrayRelease, each exactly once: spec.percent
// becomes each step's percentage, the step leaves the schedule, and the
// object ends one generation per step later.
func TestKubeAnalysisAdvancesTheFleet(t *testing.T) {
	const n = 3
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, n)
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 20\n  analysis: {interval: 1s, min_requests: 30}\n"+
		"  schedule:\n  - {at: \"2020-01-01T00:00:00Z\", percent: 40}\n  - {at: \"2020-01-01T00:01:00Z\", percent: 60}\n"), "apply", "-f", "-")
	stop := fleetLoad(t, nodes)
	waitFor(t, "both steps taken on the GrayRelease", 90*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		spec, _ := obj["spec"].(map[string]any)
		if spec["percent"] != 60.0 || spec["schedule"] != nil {
			return fmt.Errorf("spec.percent %v, schedule %v", spec["percent"], spec["schedule"])
		}
		return nil
	})
	stop()
	obj, err := k.release("checkout")
	must(t, err)
	if g := generation(obj); g != 3 {
		t.Errorf("generation %d after two steps, want 3: a step was taken more than once", g)
	}
	spec, _ := obj["spec"].(map[string]any)
	change, _ := spec["change"].(map[string]any)
	if r := fmt.Sprint(change["reason"]); !regexp.MustCompile(`^fleet analysis by node-\d: pass — advance to 60% \([1-3] of 3 nodes\)$`).MatchString(r) {
		t.Errorf("change.reason %q", r)
	}
	eachNode(t, "every node at 60% under version 3", nodes, func(nd *fleetNode) error {
		fr, err := nd.fleetOf("checkout")
		if err != nil {
			return err
		}
		if fr.Percent != 60 || fr.Version != "3" {
			return fmt.Errorf("%s: fleet status percent %v version %s", nd.name, fr.Percent, fr.Version)
		}
		return nil
	})
}
