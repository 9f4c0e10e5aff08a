package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestNACKRestoresLastGoodSnapshot pushes a config Envoy must reject (its
// listener moves to a port another process holds) and checks that graymesh
// counts the NACK, puts the last accepted snapshot back within 2 s, and
// traffic keeps flowing.
func TestNACKRestoresLastGoodSnapshot(t *testing.T) {
	m := newMesh(t, listReleases)
	goodVersion := m.status(t)["xds_version"]
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	listenerPort := strings.TrimPrefix(m.listener, "http://127.0.0.1:")
	edited := time.Now()
	if r := m.editConfig(t, "listener_port: "+listenerPort, fmt.Sprintf("listener_port: %d", port)); r != "accepted" {
		t.Fatalf("edit: %s", r)
	}
	waitFor(t, "NACK and restore", 10*time.Second, func() error {
		x := m.status(t)["xds"].(map[string]any)
		if x["nacks"].(float64) < 1 || x["restores"].(float64) < 1 {
			return fmt.Errorf("xds %v", x)
		}
		return nil
	})
	took := time.Since(edited)
	if v := m.status(t)["xds_version"]; v != goodVersion {
		t.Fatalf("xds version %v after restore, want the last good %v", v, goodVersion)
	}
	if took > 2*time.Second+time.Second { // +1 s: the file watch interval
		t.Fatalf("restore took %s", took)
	}
	// No loop: the rejected snapshot is not offered again.
	nacks := m.status(t)["xds"].(map[string]any)["nacks"].(float64)
	for i := 0; i < 20; i++ {
		if r := m.mustGet(bearer(m.token("alice", time.Now().Add(time.Hour)))); r.Env != "gray" {
			t.Fatalf("alice served by %s after the restore", r.Env)
		}
	}
	if again := m.status(t)["xds"].(map[string]any)["nacks"].(float64); again != nacks {
		t.Fatalf("NACKs went on: %v → %v", nacks, again)
	}
	t.Logf("NACK counted and last good snapshot restored %s after the edit", took.Round(time.Millisecond))
}

// TestKill9UnderLoad kills graymesh with SIGKILL in the middle of a bounded
// load: no request fails (Envoy fails open to stable), and gray routing
// resumes when graymesh is back, without restarting Envoy.
func TestKill9UnderLoad(t *testing.T) {
	m := newMesh(t, listReleases)
	before := m.envoyConfigVersions(t)
	const n = 2000
	var non2xx atomic.Int64
	var grayAfter atomic.Int64
	restarted := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- parallel(n, 4, func(i int) error {
			if i == n/3 {
				m.graymesh.kill()
			}
			r, err := m.get(bearer(m.token("alice", time.Now().Add(time.Hour))))
			if err != nil {
				non2xx.Add(1)
				return fmt.Errorf("request %d: %w", i, err)
			}
			select {
			case <-restarted:
				if r.Env == "gray" {
					grayAfter.Add(1)
				}
			default:
			}
			return nil
		})
	}()
	// Bring graymesh back while the load is still running.
	waitFor(t, "graymesh killed", 30*time.Second, func() error {
		select {
		case <-m.graymesh.done:
			return nil
		default:
			return fmt.Errorf("still running")
		}
	})
	m.graymesh = start(t, m.dir, "graymesh-restarted", m.graymesh.cmd.Path, m.graymesh.cmd.Args[1:]...)
	waitFor(t, "graymesh back", 10*time.Second, httpOK(m.admin+"/readyz"))
	close(restarted)
	if err := <-done; err != nil {
		t.Fatalf("%d non-2xx: %v", non2xx.Load(), err)
	}
	// Gray resumes: alice is gray again within a few seconds of the restart.
	waitFor(t, "gray routing to resume", 10*time.Second, func() error {
		if r := m.mustGet(bearer(m.token("alice", time.Now().Add(time.Hour)))); r.Env != "gray" {
			return fmt.Errorf("alice served by %s", r.Env)
		}
		return nil
	})
	// The restarted graymesh offers the same content under the same
	// content-hash versions: nothing for Envoy to re-apply.
	if after := m.envoyConfigVersions(t); after != before {
		t.Fatalf("Envoy config versions changed across the restart: %s → %s", before, after)
	}
	t.Logf("%d requests, 0 failed across kill -9 and restart; %d served by gray after the restart; Envoy config versions unchanged (%s)", n, grayAfter.Load(), before)
}

// processStopped says whether every thread of process pid is stopped
// (state T in /proc/PID/task/TID/stat, proc(5)).
func processStopped(pid int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return err
		}
		// The state follows the command name, which is in parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		if f := strings.Fields(rest); len(f) == 0 || f[0] != "T" {
			return fmt.Errorf("thread %s not stopped yet (%s)", task.Name(), strings.Join(f[:min(1, len(f))], ""))
		}
	}
	return nil
}

// envoyCounter sums the counters of the Envoy whose names match the
// regular expression filter.
func (m *mesh) envoyCounter(t *testing.T, filter string) int {
	t.Helper()
	return sumEnvoyCounters(t, m.envoyAdmin, filter)
}

// envoyConfigVersions reads the version_info of every dynamic resource
// from Envoy's admin config_dump.
func (m *mesh) envoyConfigVersions(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(m.envoyAdmin + "/config_dump")
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	versions := map[string]bool{}
	for _, match := range regexp.MustCompile(`"version_info":\s*"([^"]+)"`).FindAllStringSubmatch(string(body), -1) {
		versions[match[1]] = true
	}
	var out []string
	for v := range versions {
		out = append(out, v)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("no version_info in Envoy's config_dump")
	}
	return strings.Join(out, ",")
}

// TestSlowExtProcFailsOpenWithinBudget freezes graymesh (SIGSTOP: its
// sockets accept but nothing answers) and checks every request is still
// served, by stable, each one cut by ext_proc's message_timeout (Envoy's
// ext_proc filter counts it in message_timeouts) rather than failed or
// held: the budget is proved by Envoy's counter, not by wall-clock time on
// a shared machine. The latencies are logged.
func TestSlowExtProcFailsOpenWithinBudget(t *testing.T) {
	m := newMesh(t, listReleases)
	if r := m.mustGet(bearer(m.token("alice", time.Now().Add(time.Hour)))); r.Env != "gray" {
		t.Fatalf("before: %s", r.Env)
	}
	timeoutsBefore := m.envoyCounter(t, `ext_proc\.message_timeouts$`)
	must(t, m.graymesh.cmd.Process.Signal(syscall.SIGSTOP))
	defer func() { _ = m.graymesh.cmd.Process.Signal(syscall.SIGCONT) }()
	// kill(2) returns before every thread of the process has stopped; on a
	// loaded machine a thread can still answer a stream meanwhile.
	waitFor(t, "graymesh stopped", 10*time.Second, func() error {
		return processStopped(m.graymesh.cmd.Process.Pid)
	})
	const n = 100
	lat := make([]time.Duration, n)
	err := parallel(n, 5, func(i int) error {
		start := time.Now()
		r, err := m.get(bearer(m.token("alice", time.Now().Add(time.Hour))))
		if err != nil {
			return fmt.Errorf("request %d with graymesh hung: %w", i, err)
		}
		lat[i] = time.Since(start)
		if r.Env != "stable" {
			return fmt.Errorf("request %d served by %s with graymesh hung", i, r.Env)
		}
		return nil
	})
	must(t, err)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if cut := m.envoyCounter(t, `ext_proc\.message_timeouts$`) - timeoutsBefore; cut != n {
		t.Fatalf("with graymesh hung, Envoy's ext_proc message_timeouts rose by %d over %d requests: each should be cut by message_timeout and continue", cut, n)
	}
	t.Logf("graymesh hung: %d requests all served by stable, each cut by message_timeout (200 ms); p50 %s p99 %s (wall clock, noisy)", n, lat[n/2], lat[n*99/100-1])
	must(t, m.graymesh.cmd.Process.Signal(syscall.SIGCONT))
	waitFor(t, "gray routing to resume", 10*time.Second, func() error {
		if r := m.mustGet(bearer(m.token("alice", time.Now().Add(time.Hour)))); r.Env != "gray" {
			return fmt.Errorf("alice served by %s", r.Env)
		}
		return nil
	})
}

// TestSIGTERMDrainsAndExitsZero stops graymesh the way a DaemonSet rollout
// does, under load: readiness goes false first, streams drain, the process
// exits 0, and no request fails.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	m := newMesh(t, listReleases)
	load := m.load()
	waitFor(t, "load to start", 10*time.Second, func() error {
		if load.sent.Load() < 50 {
			return fmt.Errorf("%d sent", load.sent.Load())
		}
		return nil
	})
	must(t, m.graymesh.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-m.graymesh.done:
	case <-time.After(15 * time.Second):
		t.Fatal("graymesh did not exit within its 10 s drain timeout")
	}
	if code := m.graymesh.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	logs, err := os.ReadFile(m.graymesh.log)
	must(t, err)
	drain, stopped := strings.Index(string(logs), `"msg":"draining"`), strings.Index(string(logs), `"msg":"stopped"`)
	if drain < 0 || stopped < drain {
		t.Fatalf("log lacks draining before stopped:\n%s", tail(logs, 2000))
	}
	load.finish(t)
}
