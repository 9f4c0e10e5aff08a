package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// controllerNodes is how many node pods TestKubeControllerRoles runs.
const controllerNodes = 3

// TestKubeControllerRoles: the roles split as docs/kubernetes.md
// ("Roles") says. Nodes in role node serve and report only; two graymesh
// controller replicas elect one leader, which writes the status from the
// node reports. Then, measured against the real API server:
//   - only a controller ever holds the status writer's Lease;
//   - node report heartbeats (every 2 s here) renew the nodes' report
//     Leases and are never an event on a GrayRelease watch, which is what
//     every node watches;
//   - 20 spec changes in quick succession: the leader's status writes are
//     limited per object, so they are fewer than half the spec events on
//     the watch (without the limit there were more status events than
//     spec events);
//   - the leader killed with SIGKILL mid-rollout, a spec change landing
//     with no leader: every node puts it in force, the other replica takes
//     the Lease and writes its status with every node on it, the
//     generation moves once (no double action) and status.version never
//     goes down.
func TestKubeControllerRoles(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, controllerNodes, "--kube-role", "node", "--report-heartbeat", "2s")
	cs := startControllers(t, k, nodes[0].config, "controller-0", "controller-1")

	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 50\n"), "apply", "-f", "-")
	waitFor(t, "a controller leads", 60*time.Second, cs.leaderIs(cs.isController))
	waitForStatus(t, k, "checkout", 1, controllerNodes)

	checkReportChurnOffTheWatch(t, k, cs)
	gen := checkStatusChurnLimited(t, k, 1)
	checkFailoverMidRollout(t, k, cs, nodes, gen)
}

// controllers are graymesh controller replicas by identity.
type controllers struct {
	k     *kubeCP
	procs map[string]*process
}

// startControllers starts one graymesh controller per identity and waits
// until each is ready.
func startControllers(t *testing.T, k *kubeCP, config string, ids ...string) *controllers {
	t.Helper()
	cs := &controllers{k: k, procs: map[string]*process{}}
	for _, id := range ids {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cs.procs[id] = start(t, t.TempDir(), id, filepath.Join(binDir, "graymesh"), "controller", "--config", config,
			"--kubeconfig", k.kubeconfig, "--namespace", "graymesh", "--identity", id, "--listen", listen, "--log-format", "text")
		waitFor(t, id+" ready", 30*time.Second, httpOK("http://"+listen+"/readyz"))
	}
	return cs
}

// holder is the identity holding the status writer's Lease.
func (cs *controllers) holder() string {
	out, _ := cs.k.kubectl("", "-n", "graymesh", "get", "lease", "graymesh-status-writer", "-o", "jsonpath={.spec.holderIdentity}")
	return strings.TrimSpace(out)
}

func (cs *controllers) isController(h string) bool { _, ok := cs.procs[h]; return ok }

// leaderIs polls until the Lease holder satisfies want.
func (cs *controllers) leaderIs(want func(string) bool) func() error {
	return func() error {
		if h := cs.holder(); !want(h) {
			return fmt.Errorf("status writer Lease held by %q", h)
		}
		return nil
	}
}

// checkReportChurnOffTheWatch: node report heartbeats renew every node's
// report Lease and are never an event on the GrayRelease watch.
func checkReportChurnOffTheWatch(t *testing.T, k *kubeCP, cs *controllers) {
	t.Helper()
	renewals := func() map[string]string {
		out := k.mustKubectl("", "-n", "graymesh", "get", "leases", "-l", "graymesh.io/node-report=true",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}`)
		m := map[string]string{}
		for _, line := range strings.Fields(out) {
			name, rv, _ := strings.Cut(line, "=")
			m[name] = rv
		}
		return m
	}
	before := renewals()
	if len(before) != controllerNodes {
		t.Fatalf("%d node reports, want %d: %v", len(before), controllerNodes, before)
	}
	events, window := k.watchReleaseEvents(t, 10)
	after := renewals()
	renewed := 0
	for name, rv := range after {
		if before[name] != rv {
			renewed++
		}
	}
	t.Logf("measured: %d of %d node reports renewed during a %ds watch of GrayReleases, which received %d events", renewed, controllerNodes, window, len(events))
	if renewed < controllerNodes {
		t.Errorf("only %d of %d node reports were renewed in %ds with a 2 s heartbeat: the churn this checks did not happen", renewed, controllerNodes, window)
	}
	if len(events) != 0 {
		t.Errorf("node report churn reached the GrayRelease watch: %d events: %v", len(events), events)
	}
	if h := cs.holder(); !cs.isController(h) {
		t.Errorf("status writer Lease held by %q, not a controller", h)
	}
}

// checkStatusChurnLimited: 20 spec changes in quick succession, each put in
// force by every node and reported; the leader's status writes are limited
// per object, so most of the reports' churn never becomes an event on the
// nodes' watch. It returns the generation reached.
func checkStatusChurnLimited(t *testing.T, k *kubeCP, gen int64) int64 {
	t.Helper()
	rec := k.recordReleaseEvents(t)
	tick := time.NewTicker(250 * time.Millisecond)
	for i := 1; i <= rampPatches; i++ {
		<-tick.C
		must(t, k.patchRelease("checkout", map[string]any{"percent": 50 + i}))
	}
	tick.Stop()
	waitForStatus(t, k, "checkout", gen+rampPatches, controllerNodes)
	ramp := rec()
	specEvents, statusEvents := splitSpecAndStatus(ramp, gen)
	t.Logf("measured: %d spec changes put in force on %d nodes: the GrayRelease watch received %d events, %d spec and %d status", rampPatches, controllerNodes, len(ramp), specEvents, statusEvents)
	if specEvents != rampPatches {
		t.Errorf("%d spec events, want %d (one per patch)", specEvents, rampPatches)
	}
	if statusEvents*2 >= specEvents {
		t.Errorf("%d status events for %d spec changes: status writes are not rate-limited", statusEvents, specEvents)
	}
	return gen + rampPatches
}

// checkFailoverMidRollout: the leader dies mid-rollout and the next spec
// change lands with no status writer. Every node puts it in force from its
// watch; the other replica takes over and writes its status. Nothing acts
// twice (the generation moves once, by the one patch), and the status's
// version never goes down.
func checkFailoverMidRollout(t *testing.T, k *kubeCP, cs *controllers, nodes []*fleetNode, gen int64) {
	t.Helper()
	leader := cs.holder()
	rec := k.recordReleaseEvents(t)
	cs.procs[leader].kill()
	must(t, k.patchRelease("checkout", map[string]any{"percent": 100}))
	gen++
	var other string
	for id := range cs.procs {
		if id != leader {
			other = id
		}
	}
	eachNode(t, "percent 100 in force", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", strconv.FormatInt(gen, 10)) })
	waitFor(t, other+" leads after "+leader+" was killed", 60*time.Second, cs.leaderIs(func(h string) bool { return h == other }))
	waitForStatus(t, k, "checkout", gen, controllerNodes)
	failover := rec()
	if spec, _ := splitSpecAndStatus(failover, gen-1); spec != 1 {
		t.Errorf("%d generations during the failover, want 1 (the one patch): %v", spec, failover)
	}
	if r := versionRegressions(failover); len(r) > 0 {
		t.Errorf("status.version went down during the failover: %v of %v", r, failover)
	}
	t.Logf("measured: failover mid-rollout: %d events on the GrayRelease watch, generation %d, status versions %v", len(failover), gen, statusVersions(failover))
}

// rampPatches is how many spec changes the status churn measurement makes.
const rampPatches = 20

// statusVersions are the events' status.version, in order.
func statusVersions(events []releaseEvent) []string {
	out := make([]string, 0, len(events))
	for _, ev := range events {
		out = append(out, ev.Version)
	}
	return out
}

// waitForStatus waits until GrayRelease name's status says generation gen
// is accepted and in force on all n nodes.
func waitForStatus(t *testing.T, k *kubeCP, name string, gen int64, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("status: generation %d accepted on %d/%d nodes", gen, n, n), 60*time.Second, func() error {
		st, _, _, g, err := k.accepted(name)
		if err != nil || st != "True" || g != gen {
			return fmt.Errorf("Accepted=%s generation %d (%w)", st, g, err)
		}
		obj, err := k.release(name)
		if err != nil {
			return err
		}
		status, _ := obj["status"].(map[string]any)
		if want := fmt.Sprintf("%d/%d", n, n); status["nodes"] != want {
			return fmt.Errorf("status nodes %v, want %s", status["nodes"], want)
		}
		return nil
	})
}

// watchReleaseEvents watches the namespace's GrayReleases from now for
// seconds (the API server ends the watch: timeoutSeconds) and returns each
// event's type and object name, and the window.
func (k *kubeCP) watchReleaseEvents(t *testing.T, seconds int) ([]string, int) {
	t.Helper()
	const list = "/apis/graymesh.io/v1alpha1/namespaces/graymesh/grayreleases"
	b, err := k.do("GET", list, "", nil)
	must(t, err)
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	must(t, json.Unmarshal(b, &l))
	out := k.mustKubectl("", "get", "--raw", list+"?watch=true&allowWatchBookmarks=false&timeoutSeconds="+strconv.Itoa(seconds)+"&resourceVersion="+l.Metadata.ResourceVersion)
	var events []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var ev struct {
			Type   string `json:"type"`
			Object struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			} `json:"object"`
		}
		must(t, dec.Decode(&ev))
		events = append(events, ev.Type+" "+ev.Object.Metadata.Name)
	}
	slices.Sort(events)
	return events, seconds
}
