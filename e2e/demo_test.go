package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/testing/testutil"
)

// demo is scripts/run-demo.sh running as its own process group, as
// `make run` starts it, on free loopback ports.
type demo struct {
	t        *testing.T
	dir      string // the test's folder: the rendered config, the script's output
	work     string // the script's work folder (GRAYMESH_DEMO_DIR)
	config   string // the config handed to the script
	ports    map[string]int
	listener string
	admin    string
	cmd      *exec.Cmd
	out      string // the script's stdout and stderr
	done     chan struct{}
	client   *mesh // for get/getBody through the demo's Envoy
}

// demoPorts maps the script's port variables to the addresses of
// examples/demo.yaml they replace.
var demoPorts = []struct{ env, old string }{
	{"LISTENER", "listener_port: 10000"},
	{"ADMIN", "127.0.0.1:18080"},
	{"EXTPROC", "127.0.0.1:18081"},
	{"XDS", "127.0.0.1:18000"},
	{"STABLE", "127.0.0.1:9101"},
	{"GRAY", "127.0.0.1:9102"},
	{"ENVOY_ADMIN", ""},
}

// startDemo renders examples/demo.yaml on free ports, starts the demo
// script with it and waits until Envoy serves the listener.
func startDemo(t *testing.T) *demo {
	t.Helper()
	dir := t.TempDir()
	d := &demo{t: t, dir: dir, work: filepath.Join(dir, "work"), ports: map[string]int{}, done: make(chan struct{})}
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "demo.yaml"))
	must(t, err)
	cfg := string(b)
	env := append(os.Environ(),
		"GRAYMESH_DEMO_DIR="+d.work, "GRAYMESH_BIN_DIR="+binDir, "ENVOY_BIN="+envoyBin)
	for _, p := range demoPorts {
		port := freePort(t)
		d.ports[p.env] = port
		env = append(env, fmt.Sprintf("GRAYMESH_DEMO_%s_PORT=%d", p.env, port))
		if p.old == "" {
			continue
		}
		if !strings.Contains(cfg, p.old) {
			t.Fatalf("examples/demo.yaml has no %q", p.old)
		}
		cfg = strings.ReplaceAll(cfg, p.old, p.old[:strings.LastIndexAny(p.old, ": ")+1]+strconv.Itoa(port))
	}
	// A generous ext_proc budget: the checks are about routing, and a
	// decision that misses 50 ms on a loaded 2-core machine would
	// (correctly) fail open to stable and muddy them.
	cfg = strings.Replace(cfg, "message_timeout: 50ms", "message_timeout: 1s", 1)
	d.config = filepath.Join(dir, "demo.yaml")
	must(t, os.WriteFile(d.config, []byte(cfg), 0o600))
	env = append(env, "GRAYMESH_DEMO_CONFIG="+d.config)
	d.listener = fmt.Sprintf("http://127.0.0.1:%d", d.ports["LISTENER"])
	d.admin = fmt.Sprintf("http://127.0.0.1:%d", d.ports["ADMIN"])

	d.launch("run-demo.sh", env, "graymesh demo is up", "work/graymesh.log", "work/envoy.log")
	must(t, httpOK(d.listener+"/")())
	d.client = &mesh{t: t, listener: d.listener, client: newClient(t)}
	return d
}

// launch starts scripts/SCRIPT with env as its own process group, as a
// terminal's foreground job (Ctrl-C is SIGINT to the whole group), stops
// it at the end of the test (dumping its output and logs, relative to
// d.dir, when the test failed) and waits until it prints up.
func (d *demo) launch(script string, env []string, up string, logs ...string) {
	t := d.t
	t.Helper()
	out := strings.TrimSuffix(script, ".sh") + ".out"
	d.out = filepath.Join(d.dir, out)
	f, err := os.Create(d.out)
	must(t, err)
	d.cmd = exec.Command(filepath.Join(repoRoot, "scripts", script))
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, d.cmd.Start())
	go func() { _ = d.cmd.Wait(); f.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			for _, name := range append([]string{out}, logs...) {
				b, _ := os.ReadFile(filepath.Join(d.dir, name))
				t.Logf("---- %s ----\n%s", name, tail(b, 4000))
			}
		}
	})
	waitFor(t, "the "+script+" script", 90*time.Second, func() error {
		select {
		case <-d.done:
			return errors.New("the script exited")
		default:
		}
		if !strings.Contains(d.output(), up) {
			return fmt.Errorf("no %q yet", up)
		}
		return nil
	})
}

// output is what the script printed so far.
func (d *demo) output() string {
	b, _ := os.ReadFile(d.out)
	return string(b)
}

// graymeshPid is the pid of the graymesh the script runs now.
func (d *demo) graymeshPid() int {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.work, "graymesh.pid"))
	must(d.t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	must(d.t, err)
	return pid
}

// token mints a token for subject with `graymesh token`, as README.md does.
func (d *demo) token(subject string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), "token", "--config", d.config, "--subject", subject).Output()
	must(d.t, err)
	return strings.TrimSpace(string(out))
}

// stop sends SIGINT to the script's process group, as Ctrl-C does, waits
// for the script and checks that no process of the group is left.
func (d *demo) stop() {
	d.t.Helper()
	pgid := d.cmd.Process.Pid
	select {
	case <-d.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGINT)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.done
			d.t.Errorf("the demo script did not stop within 30 s of SIGINT")
		}
	}
	var left []string
	_ = testutil.Within(10 * time.Second).Until(testutil.Holds(func() bool {
		left = groupMembers(pgid)
		return len(left) == 0
	}))
	if len(left) > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		d.t.Errorf("processes of the demo left after it stopped: %v", left)
	}
}

// groupMembers lists the live (not zombie) processes in process group
// pgid, as "pid comm".
func groupMembers(pgid int) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may contain spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		comm := string(b[bytes.IndexByte(b, '(')+1 : i])
		out = append(out, fmt.Sprintf("%d %s", pid, comm))
	}
	return out
}

// TestDemoSurvivesGraymeshKill9 is `make run` with graymesh killed by
// SIGKILL under load: every request keeps succeeding (Envoy fails open to
// stable and keeps its routes), the script restarts graymesh and says so,
// gray routing comes back, and Ctrl-C then stops every process.
func TestDemoSurvivesGraymeshKill9(t *testing.T) {
	d := startDemo(t)
	alice := bearer(d.token("alice"))
	if r := d.client.mustGet(alice); r.Env != "gray" {
		t.Fatalf("alice served by %s before the kill", r.Env)
	}
	first := d.graymeshPid()
	envoyBefore := groupMembers(d.cmd.Process.Pid)

	const minRequests, maxRequests = 300, 20000
	var sent, stable, grayAgain atomic.Int64
	killAt := int64(50)
	deadline := time.Now().Add(45 * time.Second)
	back := func() bool {
		b, err := os.ReadFile(filepath.Join(d.work, "graymesh.pid"))
		return err == nil && strings.TrimSpace(string(b)) != strconv.Itoa(first) && httpOK(d.admin+"/readyz")() == nil
	}
	err := func() error {
		for i := int64(0); i < maxRequests; i++ {
			if i == killAt {
				must(t, syscall.Kill(first, syscall.SIGKILL))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("graymesh not back after %d requests and 45 s", i)
			}
			r, err := d.client.get(alice)
			sent.Add(1)
			if err != nil {
				return fmt.Errorf("request %d (graymesh killed at %d): %w", i, killAt, err)
			}
			switch {
			case r.Env == "stable":
				stable.Add(1)
			case i > killAt && r.Env == "gray":
				grayAgain.Add(1)
			}
			// Stop once graymesh is back and routing alice to gray again.
			if i >= minRequests && grayAgain.Load() > 0 && back() {
				return nil
			}
		}
		return fmt.Errorf("graymesh not back after %d requests", maxRequests)
	}()
	if err != nil {
		t.Fatal(err)
	}
	if stable.Load() == 0 {
		t.Fatal("no request was served by stable: was graymesh really down?")
	}
	wantLine := fmt.Sprintf("run-demo: graymesh (pid %d) died (killed by signal 9); restarting it", first)
	if !strings.Contains(d.output(), wantLine) {
		t.Fatalf("the script did not say %q:\n%s", wantLine, d.output())
	}
	if strings.Contains(d.output(), "stopping the demo") {
		t.Fatalf("the demo stopped:\n%s", d.output())
	}
	// Envoy is the same process: nothing but graymesh was restarted.
	envoyAfter := groupMembers(d.cmd.Process.Pid)
	if e1, e2 := findComm(envoyBefore, "envoy"), findComm(envoyAfter, "envoy"); e1 == "" || e1 != e2 {
		t.Fatalf("envoy before %q, after %q", e1, e2)
	}
	t.Logf("%d requests, none failed; %d served by stable while graymesh was down; graymesh back as pid %d, alice gray again", sent.Load(), stable.Load(), d.graymeshPid())

	// Ctrl-C: the script ends on the signal (130), not because a child
	// exited first, and takes every process with it (stop checks that).
	d.stop()
	if code := d.cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("the script exited %d on SIGINT, want 130", code)
	}
	if strings.Contains(d.output(), "stopping the demo") {
		t.Errorf("Ctrl-C was reported as a child exiting:\n%s", d.output())
	}
}

// findComm returns the "pid comm" entry whose comm starts with prefix.
func findComm(members []string, prefix string) string {
	for _, m := range members {
		if _, comm, _ := strings.Cut(m, " "); strings.HasPrefix(comm, prefix) {
			return m
		}
	}
	return ""
}
