package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// laggingConfig is each node's static settings in Kubernetes mode: a
// two-hop mesh, frontend (the edge) calling orders (an inner hop).
const laggingConfig = `
server:
  extproc_listen: 127.0.0.1:{{EXTPROC}}
  xds_listen: 127.0.0.1:{{XDS}}
  admin_listen: 127.0.0.1:{{ADMIN}}
mesh:
  message_timeout: 1s
identity:
  device_cookie: gm_device
lane:
  key: {{LANE_KEY}}
  ttl: 5m
services:
  - name: frontend
    sidecar: {inbound_port: {{FRONTEND_IN}}, outbound_port: {{FRONTEND_OUT}}, edge: true}
    environments:
      stable: [127.0.0.1:{{FRONTEND_STABLE}}]
      gray: [127.0.0.1:{{FRONTEND_GRAY}}]
  - name: orders
    sidecar: {inbound_port: {{ORDERS_IN}}, outbound_port: {{ORDERS_OUT}}}
    environments:
      stable: [127.0.0.1:{{ORDERS_STABLE}}]
      gray: [127.0.0.1:{{ORDERS_GRAY}}]
`

const laggingLaneKey = "lagging-node-mesh-key-0123456789abcdef-0123"

// twoNodeMesh is frontend's sidecar fed by one graymesh node and orders'
// by another, both in Kubernetes mode against one API server.
type twoNodeMesh struct {
	t        *testing.T
	ports    map[string]int
	graymesh [2]*process
	admins   [2]string
	// ordersEnvoyAdmin is the admin URL of orders' sidecar.
	ordersEnvoyAdmin string
	client           *http.Client
}

// startTwoNodeMesh starts the services, two graymesh nodes and the two
// sidecars: frontend's fed by node 0, orders' by node 1.
func startTwoNodeMesh(t *testing.T, k *kubeCP) *twoNodeMesh {
	t.Helper()
	m := &twoNodeMesh{t: t, ports: map[string]int{}, client: newClient(t)}
	for _, p := range []string{"FRONTEND_IN", "FRONTEND_OUT", "FRONTEND_STABLE", "FRONTEND_GRAY", "ORDERS_IN", "ORDERS_OUT", "ORDERS_STABLE", "ORDERS_GRAY"} {
		m.ports[p] = freePort(t)
	}
	shared := t.TempDir()
	demo := filepath.Join(binDir, "demo-service")
	for _, env := range []string{"stable", "gray"} {
		fe, or := m.ports["FRONTEND_"+strings.ToUpper(env)], m.ports["ORDERS_"+strings.ToUpper(env)]
		start(t, shared, "frontend-"+env, demo, "--service", "frontend", "--env", env, "--listen", fmt.Sprintf("127.0.0.1:%d", fe),
			"--calls", "orders", "--outbound", fmt.Sprintf("127.0.0.1:%d", m.ports["FRONTEND_OUT"]))
		start(t, shared, "orders-"+env, demo, "--service", "orders", "--env", env, "--listen", fmt.Sprintf("127.0.0.1:%d", or))
		waitFor(t, "frontend "+env, 10*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", fe)))
		waitFor(t, "orders "+env, 10*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", or)))
	}
	var xds [2]int
	for i := range 2 {
		xds[i] = m.startNode(t, k, i)
	}
	for i, svc := range []string{"frontend", "orders"} {
		dir := t.TempDir()
		adminPort := freePort(t)
		if svc == "orders" {
			m.ordersEnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
		}
		b, err := envoy.Load("sidecar.yaml")
		must(t, err)
		boot, err := envoy.Render(b, envoy.Overrides{NodeID: "sidecar-" + svc, NodeCluster: svc, AdminPort: uint32(adminPort), XDSHost: "127.0.0.1", XDSPort: uint32(xds[i])})
		must(t, err)
		path := filepath.Join(dir, "envoy.json")
		must(t, os.WriteFile(path, boot, 0o600))
		start(t, dir, "envoy-"+svc, envoyBin, "-c", path, "--disable-hot-restart", "--concurrency", "1", "-l", "warn")
	}
	for _, p := range []string{"ORDERS_IN", "FRONTEND_IN"} {
		waitFor(t, "sidecar "+p, 30*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/", m.ports[p])))
	}
	return m
}

// startNode starts graymesh node i in Kubernetes mode and returns its xDS
// port.
func (m *twoNodeMesh) startNode(t *testing.T, k *kubeCP, i int) int {
	t.Helper()
	dir := t.TempDir()
	ports := map[string]int{"EXTPROC": freePort(t), "XDS": freePort(t), "ADMIN": freePort(t)}
	cfg := strings.ReplaceAll(laggingConfig, "{{LANE_KEY}}", laggingLaneKey)
	for _, src := range []map[string]int{ports, m.ports} {
		for p, v := range src {
			cfg = strings.ReplaceAll(cfg, "{{"+p+"}}", strconv.Itoa(v))
		}
	}
	path := filepath.Join(dir, "graymesh.yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	m.admins[i] = fmt.Sprintf("http://127.0.0.1:%d", ports["ADMIN"])
	m.graymesh[i] = start(t, dir, fmt.Sprintf("graymesh-node-%d", i), filepath.Join(binDir, "graymesh"), "serve", "--config", path,
		"--kube", "--kubeconfig", k.kubeconfig, "--namespace", "graymesh", "--node-name", fmt.Sprintf("node-%d", i),
		"--state-dir", filepath.Join(dir, "state"), "--log-format", "text")
	waitFor(t, fmt.Sprintf("graymesh node-%d ready", i), 30*time.Second, httpOK(m.admins[i]+"/readyz"))
	return ports["XDS"]
}

// get sends one request to a sidecar's inbound listener, on a fresh
// connection, and returns the chain's answer.
func (m *twoNodeMesh) get(port string, headers map[string]string) (chainReply, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", m.ports[port]), nil)
	if err != nil {
		return chainReply{}, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return chainReply{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r chainReply
	if err := json.Unmarshal(body, &r); err != nil {
		return chainReply{}, fmt.Errorf("%s: %w: %s", resp.Status, err, body)
	}
	return r, nil
}

// chainFromEdge is one device's request through frontend's sidecar.
func (m *twoNodeMesh) chainFromEdge() (chainReply, error) {
	return m.get("FRONTEND_IN", map[string]string{"Cookie": "gm_device=d1"})
}

// expectChain checks the hops of a chain from the edge, the version the
// edge decided under, and the reason orders was given ("" any).
func expectChain(r chainReply, hops, version, ordersReason string) error {
	got := strings.Join(r.hops(), " ")
	orders := map[string]string{}
	if len(r.Calls) > 0 {
		orders = r.Calls[0].Gray
	}
	if got != hops || r.Gray[wire.HeaderVersion] != version || (ordersReason != "" && orders[wire.HeaderReason] != ordersReason) {
		return fmt.Errorf("chain %s, edge version %q, orders saw %v; want %s at version %s, orders reason %s", got, r.Gray[wire.HeaderVersion], orders, hops, version, ordersReason)
	}
	return nil
}

// ordersServes checks orders' answer to a lane sent straight to its sidecar.
func (m *twoNodeMesh) ordersServes(l, env, reason string) error {
	r, err := m.get("ORDERS_IN", withLane(l))
	if err != nil {
		return err
	}
	if r.Env != env || r.Gray[wire.HeaderReason] != reason {
		return fmt.Errorf("orders served %s (%v), want %s with reason %s", r.Env, r.Gray, env, reason)
	}
	return nil
}

// TestKubeLaggingNodeKeepsRevivedChainsGray: a revive reaches nodes at
// different moments. Node 1, which feeds orders' sidecar, stalls after the
// kill (SIGSTOP: its sidecar keeps the kill route for the whole outage);
// node 0, the edge's, applies the revive and admits the chain to gray
// under the new fleet version. The lagging inner hop must serve that
// chain gray — its kill stops only lanes issued under its own version or
// before — while a lane issued before the kill, or one without a version,
// is still stopped there as killed.
func TestKubeLaggingNodeKeepsRevivedChainsGray(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	m := startTwoNodeMesh(t, k)
	signer, err := lane.NewSigner([]byte(laggingLaneKey), time.Minute)
	must(t, err)

	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 100\n"), "apply", "-f", "-")
	waitFor(t, "gray chain at fleet version 1", 30*time.Second, func() error {
		r, err := m.chainFromEdge()
		if err != nil {
			return err
		}
		return expectChain(r, "frontend:gray orders:gray", "1", "lane")
	})
	beforeKill := signer.Sign("gray", "checkout", "1", time.Now())

	must(t, k.patchRelease("checkout", map[string]any{"state": "killed", "effective_at": nil, "change": map[string]any{"reason": "e2e kill"}}))
	// The kill is in force at orders once its route stops the lane and
	// its lane check copies the lane's version (the route compares it):
	// both before node 1 stalls.
	waitFor(t, "the kill at orders (node 1)", 30*time.Second, func() error {
		if err := m.ordersServes(beforeKill, "stable", "killed"); err != nil {
			return err
		}
		r, err := m.get("ORDERS_IN", withLane(beforeKill))
		if err == nil && r.Gray[wire.HeaderVersion] != "1" {
			err = fmt.Errorf("orders saw lane version %q, want 1", r.Gray[wire.HeaderVersion])
		}
		return err
	})
	waitFor(t, "the kill at the edge (node 0)", 30*time.Second, func() error {
		r, err := m.chainFromEdge()
		if err != nil {
			return err
		}
		return expectChain(r, "frontend:stable orders:stable", "2", "")
	})

	// Node 1 stalls: its xDS server answers nothing, so orders' sidecar
	// keeps the kill route of version 2.
	must(t, m.graymesh[1].cmd.Process.Signal(syscall.SIGSTOP))
	t.Cleanup(func() { _ = m.graymesh[1].cmd.Process.Signal(syscall.SIGCONT) })
	must(t, k.patchRelease("checkout", map[string]any{"state": "active", "effective_at": nil, "change": map[string]any{"reason": "e2e revive"}}))
	waitFor(t, "the revive at the edge (node 0)", 30*time.Second, func() error {
		r, err := m.chainFromEdge()
		if err != nil {
			return err
		}
		if r.Env != "gray" || r.Gray[wire.HeaderVersion] != "3" {
			return fmt.Errorf("edge served %s at version %q", r.Env, r.Gray[wire.HeaderVersion])
		}
		return nil
	})
	m.expectKillRouteAtOrders()

	// The chain the revived edge admitted stays gray through the lagging
	// inner hop, which sees the lane's version.
	r, err := m.chainFromEdge()
	must(t, err)
	must(t, expectChain(r, "frontend:gray orders:gray", "3", "lane"))
	if v := r.Calls[0].Gray[wire.HeaderVersion]; v != "3" {
		t.Fatalf("orders saw lane version %q, want 3", v)
	}
	// Lanes the kill must still stop at the lagging hop.
	for name, l := range map[string]string{
		"issued before the kill":          beforeKill,
		"issued under the kill's version": signer.Sign("gray", "checkout", "2", time.Now()),
		"without a version":               signer.Sign("gray", "checkout", "", time.Now()),
	} {
		if err := m.ordersServes(l, "stable", "killed"); err != nil {
			t.Errorf("a lane %s: %v", name, err)
		}
	}

	// Node 1 catches up: the kill route is gone, every lane is honoured.
	must(t, m.graymesh[1].cmd.Process.Signal(syscall.SIGCONT))
	waitFor(t, "the revive at orders (node 1)", 30*time.Second, func() error { return m.ordersServes(beforeKill, "gray", "lane") })
}

// expectKillRouteAtOrders checks from Envoy's own config dump that orders'
// sidecar still routes the kill: its node really lags.
func (m *twoNodeMesh) expectKillRouteAtOrders() {
	m.t.Helper()
	resp, err := m.client.Get(m.ordersEnvoyAdmin + "/config_dump?resource=dynamic_route_configs")
	must(m.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "orders/killed:checkout") {
		m.t.Fatalf("orders' sidecar has no kill route:\n%s", tail(body, 3000))
	}
}
