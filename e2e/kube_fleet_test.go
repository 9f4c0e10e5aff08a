package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/envoy"
)

// fleetNodes is how many graymesh + Envoy pairs stand for nodes.
const fleetNodes = 5

// fleetConfig is every node's static settings (the ConfigMap of Kubernetes
// mode): no releases, those are GrayRelease objects.
const fleetConfig = `
server:
  extproc_listen: 127.0.0.1:{{EXTPROC}}
  xds_listen: 127.0.0.1:{{XDS}}
  admin_listen: 127.0.0.1:{{ADMIN}}
mesh:
  listener_port: {{LISTENER}}
  message_timeout: 200ms
identity:
  device_cookie: gm_device
services:
  - name: shop
    domains: ["*"]
    environments:
      stable: [127.0.0.1:{{STABLE}}]
      gray: [127.0.0.1:{{GRAY}}]
`

// fleetNode is one graymesh in Kubernetes mode with its own Envoy.
type fleetNode struct {
	t        *testing.T
	name     string
	dir      string
	admin    string
	listener string
	// envoyAdmin is the node's Envoy admin address (host:port), which a
	// Prometheus scrapes.
	envoyAdmin string
	args       []string
	config     string
	graymesh   *process
	starts     int
	client     *http.Client
}

// startFleet starts n nodes against the API server, sharing one stable
// and one gray upstream.
func startFleet(t *testing.T, k *kubeCP, n int, extra ...string) []*fleetNode {
	t.Helper()
	gray := freePort(t)
	start(t, t.TempDir(), "shop-gray", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", gray), "--env", "gray", "--version", "v2")
	grays := make([]int, n)
	for i := range grays {
		grays[i] = gray
	}
	return startFleetGrays(t, k, grays, extra...)
}

// startFleetGrays starts a node per entry of grays, node i's gray
// environment at 127.0.0.1:grays[i] (started by the caller), all sharing
// one stable upstream; extra are more graymesh serve flags.
func startFleetGrays(t *testing.T, k *kubeCP, grays []int, extra ...string) []*fleetNode {
	t.Helper()
	stable := freePort(t)
	shared := t.TempDir()
	start(t, shared, "shop-stable", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", stable), "--env", "stable", "--version", "v1")
	var nodes []*fleetNode
	for i, gray := range grays {
		dir := t.TempDir()
		ports := map[string]int{"STABLE": stable, "GRAY": gray}
		for _, p := range []string{"EXTPROC", "XDS", "ADMIN", "LISTENER", "ENVOY_ADMIN"} {
			ports[p] = freePort(t)
		}
		cfg := fleetConfig
		for p, v := range ports {
			cfg = strings.ReplaceAll(cfg, "{{"+p+"}}", strconv.Itoa(v))
		}
		path := filepath.Join(dir, "graymesh.yaml")
		must(t, os.WriteFile(path, []byte(cfg), 0o600))
		nd := &fleetNode{t: t, name: fmt.Sprintf("node-%d", i), dir: dir, client: newClient(t),
			admin: fmt.Sprintf("http://127.0.0.1:%d", ports["ADMIN"]), listener: fmt.Sprintf("http://127.0.0.1:%d", ports["LISTENER"]),
			args: []string{"serve", "--config", path, "--kube", "--kubeconfig", k.kubeconfig, "--namespace", "graymesh",
				"--node-name", fmt.Sprintf("node-%d", i), "--log-format", "text"}}
		nd.args = append(nd.args, extra...)
		nd.config = path
		nd.envoyAdmin = fmt.Sprintf("127.0.0.1:%d", ports["ENVOY_ADMIN"])
		nd.startGraymesh(filepath.Join(dir, "state"))
		b, err := envoy.Load("bootstrap.yaml")
		must(t, err)
		boot, err := envoy.Render(b, envoy.Overrides{NodeID: nd.name, AdminPort: uint32(ports["ENVOY_ADMIN"]), XDSHost: "127.0.0.1", XDSPort: uint32(ports["XDS"])})
		must(t, err)
		bootPath := filepath.Join(dir, "envoy.json")
		must(t, os.WriteFile(bootPath, boot, 0o600))
		// One worker thread: five Envoys share two cores with everything else.
		start(t, dir, "envoy", envoyBin, "-c", bootPath, "--disable-hot-restart", "--concurrency", "1", "-l", "warn")
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		waitFor(t, nd.name+" envoy listener from xDS", 60*time.Second, httpOK(nd.listener+"/"))
	}
	return nodes
}

// startGraymesh starts (or restarts) the node's graymesh with stateDir and
// waits until it is ready: the initial list is in force.
func (nd *fleetNode) startGraymesh(stateDir string) {
	nd.t.Helper()
	nd.starts++
	nd.graymesh = start(nd.t, nd.dir, fmt.Sprintf("graymesh-%d", nd.starts), filepath.Join(binDir, "graymesh"), append(nd.args, "--state-dir", stateDir)...)
	waitFor(nd.t, nd.name+" graymesh ready", 30*time.Second, httpOK(nd.admin+"/readyz"))
}

// get sends one request for device through the node's Envoy.
func (nd *fleetNode) get(device string) (shopReply, error) {
	req, err := http.NewRequest(http.MethodGet, nd.listener+"/", nil)
	if err != nil {
		return shopReply{}, err
	}
	req.Header.Set("Cookie", "gm_device="+device)
	resp, err := nd.client.Do(req)
	if err != nil {
		return shopReply{}, err
	}
	defer resp.Body.Close()
	var r shopReply
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s: %s", nd.name, resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// status is the node's GET /status.
func (nd *fleetNode) status() (map[string]any, error) {
	resp, err := nd.client.Get(nd.admin + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st map[string]any
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// serves checks that the node serves env to device under version ("" any).
func (nd *fleetNode) serves(device, env, version string) error {
	r, err := nd.get(device)
	if err != nil {
		return err
	}
	if r.Env != env || (version != "" && r.Gray["x-gray-version"] != version) {
		return fmt.Errorf("%s: %s served by %s at version %s, want %s at %q", nd.name, device, r.Env, r.Gray["x-gray-version"], env, version)
	}
	return nil
}

// eachNode waits until check passes on every node.
func eachNode(t *testing.T, what string, nodes []*fleetNode, check func(*fleetNode) error) {
	t.Helper()
	waitFor(t, what, 30*time.Second, func() error {
		for _, nd := range nodes {
			if err := check(nd); err != nil {
				return err
			}
		}
		return nil
	})
}

// accepted is GrayRelease name's Accepted condition as status, reason,
// message, observed generation.
func (k *kubeCP) accepted(name string) (status, reason, message string, gen int64, err error) {
	obj, err := k.release(name)
	if err != nil {
		return "", "", "", 0, err
	}
	st, _ := obj["status"].(map[string]any)
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Accepted" {
			g, _ := m["observedGeneration"].(float64)
			return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"]), fmt.Sprint(m["message"]), int64(g), nil
		}
	}
	return "", "", "", 0, fmt.Errorf("GrayRelease %s has no Accepted condition yet", name)
}

func generation(obj map[string]any) int64 {
	meta, _ := obj["metadata"].(map[string]any)
	g, _ := meta["generation"].(float64)
	return int64(g)
}

// TestKubeFleet: five graymesh nodes, each with its own Envoy, against one
// real kube-apiserver. A release is applied, ramped and killed through the
// API server; every node converges on the same state under the same
// x-gray-version; the API server refuses an evicting apply; a spec
// graymesh refuses shows Accepted=False while every node keeps the
// previous state; a node down during a kill comes back killed; a node
// whose watch is cut keeps serving, reports stale and catches up. The kill
// convergence figures are logged (kube_bench_test.go measures them).
//
//nolint:funlen // one fleet, one story: each step needs the state the previous left
func TestKubeFleet(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, fleetNodes)

	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 0\n"), "apply", "-f", "-")
	eachNode(t, "release applied, nobody gray", nodes, func(nd *fleetNode) error { return nd.serves("u1", "stable", "1") })
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 100\n"), "apply", "-f", "-")
	eachNode(t, "ramp to 100% served by every node", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", "2") })
	t.Log("fleet version 2 (checkout generation 2) served by all 5 nodes")

	out, err := k.kubectl(grayRelease("checkout", "  env: gray\n  percent: 50\n"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "rule percent-lowered") {
		t.Fatalf("evicting apply: want the API server's refusal naming rule percent-lowered, got err=%v:\n%s", err, out)
	}
	t.Logf("evicting kubectl apply refused: %s", strings.TrimSpace(out))

	// A spec the OpenAPI schema and CEL pass but graymesh refuses: every
	// node keeps version 2, and the elected writer says why.
	must(t, k.patchRelease("checkout", map[string]any{"cidrs": []string{"not-a-cidr"}}))
	waitFor(t, "Accepted=False on the refused generation", 30*time.Second, func() error {
		st, reason, msg, gen, err := k.accepted("checkout")
		if err != nil {
			return err
		}
		if st != "False" || gen != 3 || reason != "Refused" || !strings.Contains(msg, "not-a-cidr") {
			return fmt.Errorf("Accepted=%s reason %s generation %d: %s", st, reason, gen, msg)
		}
		return nil
	})
	eachNode(t, "previous state kept after a refused spec", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", "2") })
	checkFleetRefused(t, k, nodes, 3, 2, "not-a-cidr")
	t.Log(strings.TrimSpace(k.mustKubectl("", "get", "grayreleases")))

	must(t, k.patchRelease("checkout", map[string]any{"cidrs": nil}))
	eachNode(t, "fixed spec in force", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", "4") })
	waitFor(t, "Accepted=True again, 5/5 nodes at version 4", 30*time.Second, func() error {
		st, _, _, gen, err := k.accepted("checkout")
		if err != nil || st != "True" || gen != 4 {
			return fmt.Errorf("Accepted=%s generation %d (%w)", st, gen, err)
		}
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		status, _ := obj["status"].(map[string]any)
		if status["nodes"] != "5/5" || status["version"] != "4" || status["state"] != "active" {
			return fmt.Errorf("status nodes %v version %v state %v", status["nodes"], status["version"], status["state"])
		}
		return nil
	})
	checkConsoleFleet(t, nodes[0], fleetNodes, 4)
	t.Log(strings.TrimSpace(k.mustKubectl("", "get", "grayreleases")))

	// A node down during a kill, restarted with an empty state directory,
	// comes back killed: the initial list is in force before it is ready.
	down := nodes[fleetNodes-1]
	down.graymesh.kill()
	out = runGraymesh(t, "release", "kill", "checkout", "--kube", "--kubeconfig", k.kubeconfig, "--namespace", "graymesh", "--reason", "e2e kill")
	t.Logf("graymesh release kill --kube: %s", strings.TrimSpace(out))
	eachNode(t, "kill served by the running nodes", nodes[:fleetNodes-1], func(nd *fleetNode) error { return nd.serves("u1", "stable", "") })
	down.startGraymesh(filepath.Join(down.dir, "state-after-restart"))
	if err := down.serves("u1", "stable", "5"); err != nil {
		t.Fatalf("restarted node's first answer: %v", err)
	}
	eachNode(t, "whole fleet killed at version 5", nodes, func(nd *fleetNode) error { return nd.serves("u1", "stable", "5") })
	waitFor(t, "graymesh release list --kube shows the kill", 30*time.Second, func() error {
		out := runGraymesh(t, "release", "list", "--kube", "--kubeconfig", k.kubeconfig, "--namespace", "graymesh")
		if !strings.Contains(out, "killed") || !strings.Contains(out, "5/5") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})

	// Watch loss: the API server goes away; every node keeps serving the
	// kill, reports itself stale, and catches up once it is back.
	k.StopAPIServer()
	eachNode(t, "stale reported while the API server is down", nodes, func(nd *fleetNode) error {
		st, err := nd.status()
		if err != nil {
			return err
		}
		fleet, _ := st["fleet"].(map[string]any)
		if s, _ := fleet["stale_seconds"].(float64); s <= 0 {
			return fmt.Errorf("%s: stale_seconds %v", nd.name, fleet["stale_seconds"])
		}
		return nd.serves("u1", "stable", "5")
	})
	must(t, k.StartAPIServer())
	must(t, k.patchRelease("checkout", map[string]any{"state": "active", "change": map[string]any{"reason": "e2e revive"}}))
	eachNode(t, "caught up after the outage", nodes, func(nd *fleetNode) error {
		st, err := nd.status()
		if err != nil {
			return err
		}
		fleet, _ := st["fleet"].(map[string]any)
		if s, _ := fleet["stale_seconds"].(float64); s != 0 {
			return fmt.Errorf("%s: still stale (%vs)", nd.name, s)
		}
		return nd.serves("u1", "gray", "6")
	})

	kills := 3
	if v, err := strconv.Atoi(os.Getenv("GRAYMESH_KUBE_KILLS")); err == nil && v > 0 {
		kills = v
	}
	lat := measureKills(t, k, nodes, kills)
	t.Logf("kill convergence over %d kills × %d nodes: %s", kills, len(nodes), summarize(lat))
}

// measureKills revives and kills checkout n times and returns, per kill
// and node, the time from sending the PATCH that kills to the node's first
// answer served by stable. Each node is polled by its own client in a
// tight loop (bounded to 10 s per kill).
func measureKills(t *testing.T, k *kubeCP, nodes []*fleetNode, n int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := range n {
		must(t, k.patchRelease("checkout", map[string]any{"state": "active", "change": map[string]any{"reason": fmt.Sprintf("revive %d", i)}}))
		eachNode(t, "revived", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", "") })
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			sent = make(chan time.Time)
		)
		for _, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := <-sent
				deadline := t0.Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if r, err := nd.get("u1"); err == nil && r.Env == "stable" {
						mu.Lock()
						lat = append(lat, time.Since(t0))
						mu.Unlock()
						return
					}
				}
				t.Errorf("%s still gray 10 s after kill %d", nd.name, i)
			}()
		}
		t0 := time.Now()
		for range nodes {
			sent <- t0
		}
		must(t, k.patchRelease("checkout", map[string]any{"state": "killed", "change": map[string]any{"reason": fmt.Sprintf("kill %d", i)}}))
		wg.Wait()
	}
	return lat
}

// summarize reports p50, p99 and max of durations.
func summarize(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(s), q(0.50).Round(100*time.Microsecond), q(0.99).Round(100*time.Microsecond), s[len(s)-1].Round(100*time.Microsecond))
}

// runGraymesh runs the graymesh CLI and returns its output.
func runGraymesh(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("graymesh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
