package loadbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// cpuPlan says which core each process runs on. With fewer than two cores
// or no taskset, nothing is pinned.
type cpuPlan struct {
	taskset string
	// envoy is Envoy's core; rest is everyone else's: the harness (load
	// client), the upstream and the ext_proc server.
	envoy, rest int
	pinned      bool
	why         string
}

func planCPUs(pin bool) cpuPlan {
	if !pin {
		return cpuPlan{why: "pinning off (--pin=false)"}
	}
	n := runtime.NumCPU()
	if n < 2 {
		return cpuPlan{why: fmt.Sprintf("not pinned: %d core", n)}
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return cpuPlan{why: "not pinned: taskset (util-linux) not found"}
	}
	return cpuPlan{taskset: ts, envoy: 0, rest: 1, pinned: true,
		why: "Envoy on core 0; the load client (this harness), the upstream and the ext_proc server (graymesh or no-op) on core 1, with taskset from util-linux"}
}

// command returns the argv that runs bin on core cpu.
func (c cpuPlan) command(cpu int, bin string, args ...string) (string, []string) {
	if !c.pinned {
		return bin, args
	}
	return c.taskset, append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
}

// pinSelf moves every thread of this process to core cpu; threads the Go
// runtime starts later inherit the mask of the thread that starts them.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pinning thread %d: %w", tid, err)
		}
	}
	return nil
}

// startProc starts a child process (via taskset when pinned); its stdout
// and stderr go to dir/name.log.
func startProc(dir, name string, plan cpuPlan, cpu int, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	path, argv := plan.command(cpu, bin, args...)
	cmd := exec.Command(path, argv...)
	cmd.Stdout, cmd.Stderr = f, f
	// The child dies with the harness even if the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs and waits.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// logTail is the end of the process's log, for error messages.
func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitReady polls check every 20 ms until it succeeds, the process exits
// or timeout passes.
func waitReady(ctx context.Context, p *proc, what string, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = check(); err == nil {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before it was ready: %w\n%s", p.name, p.err, p.logTail(2000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", what, timeout, err)
		case <-tick.C:
		}
	}
}

// httpOK checks that GET url answers 200 (and, when want is set, a body
// containing it).
func httpOK(c *http.Client, url, want string) func() error {
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		if want != "" && !strings.Contains(string(b), want) {
			return fmt.Errorf("%s: %q has no %q", url, b, want)
		}
		return nil
	}
}

// tcpOpen checks that addr accepts connections.
func tcpOpen(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// cpuTicks is a process's user+system CPU time so far, in clock ticks,
// from /proc/<pid>/stat (fields 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

func parseStatTicks(stat string) (int64, error) {
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// clockTicks is USER_HZ (sysconf(_SC_CLK_TCK)), from getconf; Linux has
// used 100 on every common architecture for decades.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}
