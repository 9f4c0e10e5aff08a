// Package scripts tests the demo scripts' shell library (lib.sh) and what
// the demo scripts do before they start anything.
package scripts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a helper process that listens on the
// port it names (with SO_REUSEPORT) until killed: another instance.
const helperEnv = "GRAYMESH_SCRIPTS_TEST_LISTEN"

func TestMain(m *testing.M) {
	if port := os.Getenv(helperEnv); port != "" {
		l, err := reusePortListen(port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("listening", l.Addr().(*net.TCPAddr).Port)
		defer l.Close()
		select {}
	}
	dir, err := os.MkdirTemp("", "scripts-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binDir holds the binaries built for the tests that need them.
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// buildGraymesh builds bin/graymesh into binDir, once.
func buildGraymesh(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", binDir+"/", "../cmd/graymesh").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/graymesh: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// reusePortListen listens on 127.0.0.1:port with SO_REUSEPORT, as Envoy's
// listeners do, so two processes can hold the port at once.
func reusePortListen(port string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:"+port)
}

// startHelper starts another process listening on port (0: any), and
// returns its pid and port.
func startHelper(t *testing.T, port int) (pid, listening int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := fmt.Fscanf(out, "listening %d\n", &listening); err != nil {
		t.Fatalf("helper: %v", err)
	}
	return cmd.Process.Pid, listening
}

// listen holds a port in this test process, with SO_REUSEPORT.
func listen(t *testing.T) (port int) {
	t.Helper()
	l, err := reusePortListen("0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// lib runs script in bash after sourcing lib.sh as the demo scripts do,
// with its work folder in a temporary directory; it returns the exit
// status and the combined output.
func lib(t *testing.T, script string, env ...string) (int, string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\nroot=\"$1\"; name=test; demo=test\n. \"$root/scripts/lib.sh\"\n"+script, "bash", root)
	cmd.Env = append(append(os.Environ(), "GRAYMESH_DEMO_DIR="+t.TempDir(), "GRAYMESH_DEMO_READY_TRIES=20"), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("script timed out: %s", out)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

// holds says a port is the demo's only when the demo's process holds
// every socket listening on it: with SO_REUSEPORT another instance can
// listen on the same port, and would answer half the readiness probes.
func TestHoldsOnlyThePortsAProcessAloneListensOn(t *testing.T) {
	self := os.Getpid()
	alone := listen(t)
	shared := listen(t)
	other, _ := startHelper(t, shared)
	third, elsewhere := startHelper(t, 0)
	for _, c := range []struct {
		name string
		pid  int
		port int
		want bool
	}{
		{"its own port", self, alone, true},
		{"a port another process shares with it", self, shared, false},
		{"the other process on the shared port", other, shared, false},
		{"a port only another process listens on", self, elsewhere, false},
		{"that process's own port", third, elsewhere, true},
	} {
		code, out := lib(t, fmt.Sprintf("holds %d %d", c.pid, c.port))
		if (code == 0) != c.want {
			t.Errorf("%s: holds exited %d, want held %v: %s", c.name, code, c.want, out)
		}
	}
	// A port nobody listens on is held by nobody.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if code, out := lib(t, fmt.Sprintf("holds %d %d", self, free)); code == 0 {
		t.Errorf("a free port is held: %s", out)
	}
}

// wait_ready fails at once when the process it waits for has exited, and
// never takes another process's answer on the port for readiness.
func TestWaitReadyWantsTheStartedProcess(t *testing.T) {
	taken := listen(t)
	code, out := lib(t, fmt.Sprintf("sleep 60 & started sleeper\nwait_ready sleeper $! %d", taken))
	if code == 0 || !strings.Contains(out, "sleeper did not come up on port "+strconv.Itoa(taken)) {
		t.Errorf("a process not holding the port was ready: %d %s", code, out)
	}
	code, out = lib(t, fmt.Sprintf("true & p=$!\nwait $p || true\nwait_ready quitter $p %d", taken))
	if code == 0 || !strings.Contains(out, "quitter (pid") || !strings.Contains(out, "exited before it was ready") {
		t.Errorf("an exited process: %d %s", code, out)
	}
	code, out = lib(t, fmt.Sprintf("wait_ready me %d %d", os.Getpid(), taken))
	if code != 0 {
		t.Errorf("the process holding the port is not ready: %d %s", code, out)
	}
}

// wait_until polls its check until it succeeds, returns 1 when the tries
// run out, and fails at once when the process it waits for has exited
// (run-mesh.sh waits so for Kafka and for the notifiers).
func TestWaitUntilPollsItsCheck(t *testing.T) {
	code, out := lib(t, `sleep 60 & started sleeper
n=0
third() { n=$((n + 1)); [ "$n" -ge 3 ]; }
wait_until sleeper $! third && echo "ready after $n"
wait_until sleeper $! false || echo "gave up"`)
	if code != 0 || !strings.Contains(out, "ready after 3") || !strings.Contains(out, "gave up") {
		t.Errorf("wait_until: %d %s", code, out)
	}
	code, out = lib(t, "true & p=$!\nwait $p || true\nwait_until quitter $p false || echo returned")
	if code == 0 || !strings.Contains(out, "quitter (pid") || strings.Contains(out, "returned") {
		t.Errorf("an exited process: %d %s", code, out)
	}
}

// check_ports names every port another process listens on, with the
// variable that moves it; render_ports moves the defaults in one pass.
func TestPortsAreCheckedAndMoved(t *testing.T) {
	taken := listen(t)
	code, out := lib(t, fmt.Sprintf("port a ALPHA %d\nport b BETA 1\ncheck_ports\necho started", taken))
	if code == 0 || strings.Contains(out, "started") || !strings.Contains(out, strconv.Itoa(taken)+" (ALPHA)") ||
		!strings.Contains(out, "GRAYMESH_DEMO_PORT_OFFSET") {
		t.Errorf("check_ports with port %d taken: %d %s", taken, code, out)
	}
	// Two ports swapped, one moved by the offset, one named: each lands
	// once, in both spellings the configs use.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("a: 127.0.0.1:1001\nb: {inbound_port: 1002}\nc: 127.0.0.1:10010\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = lib(t, fmt.Sprintf("port a A 1001\nport b B 1002\nport c C 1003\necho \"$a $b $c\"\nrender_ports %s", cfg),
		"GRAYMESH_DEMO_A_PORT=1002", "GRAYMESH_DEMO_B_PORT=1001", "GRAYMESH_DEMO_PORT_OFFSET=5")
	if code != 0 || !strings.Contains(out, "1002 1001 1008") {
		t.Fatalf("ports: %d %s", code, out)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a: 127.0.0.1:1002\nb: {inbound_port: 1001}\nc: 127.0.0.1:10010\n"; string(b) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", b, want)
	}
}

// keep_up starts a stopped process again, and stops with the demo
// without starting it again.
func TestKeepUpRestartsAStoppedService(t *testing.T) {
	script := `keep_up sleeper 0.1 "$work/sleeper.log" sleep 600
first=
for _ in $(seq 1 100); do first=$(cat "$work/sleeper.pid" 2>/dev/null) && break; sleep 0.1; done
kill "$first"
for _ in $(seq 1 100); do
  second=$(cat "$work/sleeper.pid")
  [ "$second" != "$first" ] && kill -0 "$second" 2>/dev/null && break
  sleep 0.1
done
echo "first $first second $second"
kill "${pids[0]}"
wait "${pids[0]}" || true
kill -0 "$second" 2>/dev/null && echo "second still running"
trap - EXIT`
	code, out := lib(t, script)
	var first, second int
	if _, err := fmt.Sscanf(out[strings.Index(out, "first "):], "first %d second %d", &first, &second); err != nil || code != 0 {
		t.Fatalf("%d %v: %s", code, err, out)
	}
	if first == second || !strings.Contains(out, "sleeper had stopped; started it again") {
		t.Errorf("not restarted: %s", out)
	}
	if strings.Contains(out, "still running") {
		t.Errorf("the kept process outlived its supervisor: %s", out)
	}
}

// The demo scripts refuse to start, before starting anything, while
// another process listens on one of their ports.
func TestDemosRefuseATakenPort(t *testing.T) {
	for _, c := range []struct{ script, variable string }{
		{"run-demo.sh", "LISTENER"},
		{"run-mesh.sh", "FRONTEND_INBOUND"},
		{"run-mesh.sh", "OTLP"},
	} {
		taken := listen(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "./"+c.script)
		work := t.TempDir()
		cmd.Env = append(os.Environ(), "GRAYMESH_DEMO_DIR="+work, "GRAYMESH_BIN_DIR=/nonexistent",
			fmt.Sprintf("GRAYMESH_DEMO_%s_PORT=%d", c.variable, taken))
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), fmt.Sprintf("%d (%s)", taken, c.variable)) {
			t.Errorf("%s with %s's port %d taken: %v: %s", c.script, c.variable, taken, err, out)
		}
		if entries, _ := os.ReadDir(work); len(entries) != 0 {
			t.Errorf("%s wrote %d entries to its work folder before refusing", c.script, len(entries))
		}
	}
}

// With GRAYMESH_DEMO_KAFKA=1 and no Kafka installed, the mesh demo says
// what installs it, before starting anything.
func TestMeshDemoWithoutKafkaSaysMakeKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run-mesh.sh")
	work := t.TempDir()
	cmd.Env = append(os.Environ(), "GRAYMESH_DEMO_DIR="+work, "GRAYMESH_BIN_DIR=/nonexistent",
		"GRAYMESH_DEMO_KAFKA=1", "KAFKA_HOME="+filepath.Join(work, "no-kafka"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "make kafka installs it") {
		t.Errorf("run-mesh.sh without Kafka: %v: %s", err, out)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("run-mesh.sh wrote %d entries to its work folder before refusing", len(entries))
	}
}

// The banner offers a token command only for a config graymesh token can
// mint with (an HMAC key): for any other, `make run CONFIG=FILE` would
// suggest a command that fails.
func TestTokenHintOnlyWhereATokenCanBeMinted(t *testing.T) {
	buildGraymesh(t)
	demo, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hmacKey := "    keys:\n      # Demo only: a real deployment uses secret_file or public keys.\n      - {kid: demo, alg: HS256, secret: graymesh-demo-secret-not-for-production}\n"
	if !strings.Contains(string(demo), hmacKey) {
		t.Fatal("examples/demo.yaml's HMAC key changed; update this test")
	}
	noHMAC := filepath.Join(t.TempDir(), "rs256.yaml")
	cfg := strings.Replace(strings.Replace(string(demo), hmacKey, "    jwks_uri: http://127.0.0.1:9/keys\n", 1), "algorithms: [HS256]", "algorithms: [RS256]", 1)
	if err := os.WriteFile(noHMAC, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	for _, c := range []struct {
		config   string
		want     string
		withhold string
	}{
		{filepath.Join(root, "examples", "demo.yaml"), "TOKEN=$(bin/graymesh token --config", "no HMAC key"},
		{noHMAC, "has no HMAC key", "graymesh token --config"},
	} {
		code, out := lib(t, fmt.Sprintf("token_hint %s http://127.0.0.1:10000/ docs/tour.md", c.config), "GRAYMESH_BIN_DIR="+binDir)
		if code != 0 || !strings.Contains(out, c.want) || strings.Contains(out, c.withhold) || !strings.Contains(out, "curl -s") {
			t.Errorf("%s: %d\n%s", c.config, code, out)
		}
	}
}
