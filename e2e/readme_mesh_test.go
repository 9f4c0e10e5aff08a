package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// meshDemoPorts are scripts/run-mesh.sh's ports: the name that moves each
// (GRAYMESH_DEMO_<NAME>_PORT) and its default.
func meshDemoPorts() map[string]int {
	ports := map[string]int{
		"ADMIN": 18180, "EXTPROC": 18181, "XDS": 18100,
		"JAEGER_UI": 16686, "JAEGER_GRPC": 16685, "OTLP": 4317,
		"FRONTEND_STABLE": 9201, "FRONTEND_GRAY": 9207, "ORDERS_STABLE": 9202, "ORDERS_GRAY": 9203,
		"INVENTORY_STABLE": 9204, "PRICING_STABLE": 9205, "PRICING_GRAY": 9206,
	}
	for i, s := range []string{"FRONTEND", "ORDERS", "INVENTORY", "PRICING"} {
		ports[s+"_INBOUND"] = 10001 + i
		ports[s+"_OUTBOUND"] = 15001 + i
		ports[s+"_ENVOY_ADMIN"] = 9911 + i
		if s != "INVENTORY" {
			ports[s+"_FALLBACK"] = 16001 + i
		}
	}
	return ports
}

// startMeshDemo starts scripts/run-mesh.sh, as `make run DEMO=mesh` does,
// with every port moved to a free one; it returns the demo and the moved
// ports by name.
func startMeshDemo(t *testing.T) (*demo, map[string]int) {
	t.Helper()
	return startMeshDemoWith(t, meshDemoPorts(), nil)
}

// startMeshDemoWith is startMeshDemo with ports (names and defaults) to
// move, env added to the script's environment, and more logs (relative to
// the test's folder) to show when the test fails.
func startMeshDemoWith(t *testing.T, ports map[string]int, extraEnv []string, logs ...string) (*demo, map[string]int) {
	t.Helper()
	jaeger, err := findJaeger()
	if err != nil {
		// Never skip: the mesh guide's trace commands need it.
		t.Fatalf("%v; build it with: make jaeger   (or set JAEGER_BIN)", err)
	}
	dir := t.TempDir()
	d := &demo{t: t, dir: dir, work: filepath.Join(dir, "work"), ports: map[string]int{}, done: make(chan struct{})}
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "mesh.yaml"))
	must(t, err)
	// A generous ext_proc budget: on a loaded 2-core machine a decision
	// missing 50 ms fails open to stable, and the guide's outputs are
	// about routing.
	d.config = filepath.Join(dir, "mesh.yaml")
	must(t, os.WriteFile(d.config, []byte(strings.Replace(string(b), "message_timeout: 50ms", "message_timeout: 1s", 1)), 0o600))
	env := append(os.Environ(), "GRAYMESH_DEMO_DIR="+d.work, "GRAYMESH_BIN_DIR="+binDir, "ENVOY_BIN="+envoyBin,
		"JAEGER_BIN="+jaeger, "GRAYMESH_DEMO_CONFIG="+d.config, "GRAYMESH_DEMO_RESTART_AFTER=10")
	env = append(env, extraEnv...)
	for name := range ports {
		d.ports[name] = freePort(t)
		env = append(env, fmt.Sprintf("GRAYMESH_DEMO_%s_PORT=%d", name, d.ports[name]))
	}
	d.launch("run-mesh.sh", env, "graymesh mesh demo is up", append([]string{
		"work/graymesh.log", "work/jaeger.log", "work/envoy-frontend.log", "work/envoy-pricing.log", "work/pricing-gray.log",
	}, logs...)...)
	return d, d.ports
}

// jaegerTraceIDs are the IDs of the traces Jaeger holds with a span of
// service, over the last hour.
func jaegerTraceIDs(query, service string) (map[string]bool, error) {
	resp, err := http.Get(query + "/api/traces?lookback=1h&limit=1000&service=" + service)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			TraceID string `json:"traceID"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, tr := range body.Data {
		ids[tr.TraceID] = true
	}
	return ids, nil
}

// startDecoy starts a process whose command line looks like a demo
// service on port, as another instance's would: the guide's commands must
// leave it alone.
func startDecoy(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", "-c", "sleep 600; :", fmt.Sprintf("demo-service --service pricing --env gray --listen 127.0.0.1:%d", port))
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestReadmeMesh runs the marked shell blocks of docs/mesh.md, in order
// and in one shell, against the mesh demo script on free ports with a real
// Jaeger, and checks the outputs they promise: the lane through four hops,
// forged lanes refused, gray pricing stopped and back, the traces read and
// verified. It also checks what the script promises: its start sends no
// request through the chain (no trace of its own), and the guide's
// commands touch no other instance's process.
func TestReadmeMesh(t *testing.T) {
	blocks := docBlocks(t, meshDocs, true)
	if len(blocks) < 5 {
		t.Fatalf("%v have %d marked blocks; every command block of the mesh guide should be marked", meshDocs, len(blocks))
	}
	d, ports := startMeshDemo(t)
	query := fmt.Sprintf("http://127.0.0.1:%d", ports["JAEGER_UI"])
	edge := fmt.Sprintf("http://127.0.0.1:%d/", ports["FRONTEND_INBOUND"])
	if out := d.output(); strings.Contains(out, "Jaeger UI") || !strings.Contains(out, "Jaeger query API") {
		t.Errorf("the banner names a Jaeger UI this Jaeger does not have:\n%s", out)
	}

	// One request of the test's own, then Jaeger must hold its trace and
	// no other: spans are exported in order, so a trace of the start's
	// own would be there by then.
	must(t, httpOK(edge)())
	var ids map[string]bool
	waitFor(t, "the test's trace in Jaeger", 30*time.Second, func() error {
		ids = map[string]bool{}
		for _, svc := range []string{"frontend", "orders", "inventory", "pricing"} {
			got, err := jaegerTraceIDs(query, svc)
			if err != nil {
				return err
			}
			for id := range got {
				ids[id] = true
			}
		}
		if len(ids) == 0 {
			return fmt.Errorf("no trace yet")
		}
		return nil
	})
	if len(ids) != 1 {
		t.Errorf("Jaeger holds %d traces after the start and one request; the start must send none of its own", len(ids))
	}

	decoy := startDecoy(t, ports["PRICING_GRAY"])
	pairs := []string{"bin/graymesh", filepath.Join(binDir, "graymesh"), ".tools/mesh/", d.work + "/"}
	for name, def := range meshDemoPorts() {
		pairs = append(pairs, fmt.Sprintf("127.0.0.1:%d", def), fmt.Sprintf("127.0.0.1:%d", ports[name]))
	}
	out, output := runBlocks(t, blocks, strings.NewReplacer(pairs...), 4*time.Minute)

	checkBlocks(t, output, []blockCheck{
		{block: `--subject alice)`, // alice's chain, anonymous, forged lanes at the edge and inside
			want: []string{`"x-gray-fallback": "no-gray-version"`, `"x-gray-lane-problem":"`},
			count: map[string]int{`"env": "gray"`: 3, `"env": "stable"`: 5, // pretty-printed: alice's chain, then anonymous
				`"env":"stable"`: 7, `"env":"gray"`: 0}}, // forged: 4 at the edge, 3 from orders on
		{block: `pricing-gray.pid`,
			want:    []string{`"service":"pricing","env":"stable"`, `"x-gray-fallback":"gray-unavailable"`},
			notWant: []string{`"service":"pricing","env":"gray"`}},
		{block: `for i in $(seq 30)`,
			want: []string{`"service":"pricing","env":"gray"`}},
		{block: `grep -c '"spanID"'`,
			want: []string{`"traceID"`, `"spans"`}},
		{block: `--service frontend --since 10m`,
			want: []string{"leaks:  0"}},
	})
	if err := decoy.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the guide's commands stopped another instance's process: %v", err)
	}
	if t.Failed() {
		t.Logf("---- doc commands output ----\n%s", out)
	}
}
