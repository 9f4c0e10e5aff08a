package irbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process under callgrind: Envoy, or graymesh.
type proc struct {
	o       Options
	cmd     *exec.Cmd
	out     string
	logPath string
	done    chan struct{}
}

// startProc starts bin, when counted under callgrind with instrumentation
// off (so start-up and warm-up are not counted; callgrind_control -i on
// starts counting), every thread in one count, and waits until ready
// passes.
func startProc(ctx context.Context, o Options, tag string, env []string, bin string, args []string, ready func() error, counted bool) (*proc, error) {
	out := filepath.Join(o.WorkDir, "callgrind-"+tag+".out")
	old, _ := filepath.Glob(out + "*")
	for _, f := range old {
		_ = os.Remove(f)
	}
	p := &proc{o: o, out: out, logPath: filepath.Join(o.WorkDir, tag+".log"), done: make(chan struct{})}
	log, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	if counted {
		vg := append([]string{"--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out, bin}, args...)
		p.cmd = exec.CommandContext(ctx, o.Valgrind, vg...)
	} else {
		p.cmd = exec.CommandContext(ctx, bin, args...)
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); log.Close(); close(p.done) }()
	if err := poll(ctx, 3*time.Minute, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited; see %s", tag, p.logPath)
		default:
		}
		return ready()
	}); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startEnvoy starts Envoy (under callgrind when counted) from a bootstrap.
func startEnvoy(ctx context.Context, o Options, tag, bootPath string, adminPort int, counted bool) (*proc, error) {
	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort)
	return startProc(ctx, o, "envoy-"+tag, nil, o.Envoy,
		[]string{"-c", bootPath, "--concurrency", "1", "--disable-hot-restart", "-l", "error"},
		func() error { return get(ready) }, counted)
}

// peakRSS is the process's peak resident set (VmHWM), in kB.
func (p *proc) peakRSS() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseVMHWM(string(b))
}

func parseVMHWM(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc status")
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// control sends a command to the callgrind in the process.
func (p *proc) control(ctx context.Context, args ...string) error {
	args = append(args, strconv.Itoa(p.cmd.Process.Pid))
	out, err := exec.CommandContext(ctx, p.o.Control, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", p.o.Control, strings.Join(args, " "), err, out)
	}
	return nil
}

// count zeroes the processes' counters, runs work and dumps them: the
// instructions work cost each process (every thread), and the garbage
// collections each began (0 for a process that is not Go's).
func count(ctx context.Context, procs []*proc, work func() error) ([]uint64, []int, error) {
	for _, p := range procs {
		if err := p.control(ctx, "-z"); err != nil {
			return nil, nil, err
		}
	}
	if err := work(); err != nil {
		return nil, nil, err
	}
	out, gcs := make([]uint64, len(procs)), make([]int, len(procs))
	for i, p := range procs {
		n, path, err := p.dump(ctx)
		if err != nil {
			return nil, nil, err
		}
		if gcs[i], err = gcCycles(path); err != nil {
			return nil, nil, err
		}
		out[i] = n
	}
	return out, gcs, nil
}

// dump has callgrind write its counts and returns the total and the
// dump's path.
func (p *proc) dump(ctx context.Context) (uint64, string, error) {
	before, _ := filepath.Glob(p.out + ".*")
	if err := p.control(ctx, "-d"); err != nil {
		return 0, "", err
	}
	var dump string
	if err := poll(ctx, time.Minute, func() error {
		after, _ := filepath.Glob(p.out + ".*")
		if len(after) <= len(before) {
			return fmt.Errorf("no new dump of %s", p.out)
		}
		sort.Slice(after, func(i, j int) bool { return dumpIndex(after[i]) < dumpIndex(after[j]) })
		dump = after[len(after)-1]
		return nil
	}); err != nil {
		return 0, "", err
	}
	var total uint64
	err := poll(ctx, time.Minute, func() error {
		var err error
		total, err = readTotal(dump)
		return err
	})
	return total, dump, err
}

func dumpIndex(path string) int {
	n, _ := strconv.Atoi(path[strings.LastIndexByte(path, '.')+1:])
	return n
}

// readTotal reads the instruction total of a callgrind dump: its
// "totals:" line, the dump's last, so a dump still being written has none.
func readTotal(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseTotal(f)
}

// gcCycles counts the calls of runtime.gcStart in a callgrind dump: the
// Go garbage collections that began during the count (-1 when the binary
// has no symbols to tell).
func gcCycles(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseGCStarts(f)
}

func parseGCStarts(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	names := map[string]string{}
	callee, n, symbols := "", 0, false
	for sc.Scan() {
		line := sc.Text()
		// Callgrind names a function once, at its first fn= or cfn=, and
		// by its id after that.
		if rest, ok := strings.CutPrefix(line, "fn=("); ok {
			id, name, _ := strings.Cut(rest, ")")
			if name = strings.TrimSpace(name); name != "" {
				names[id] = name
				symbols = symbols || strings.HasPrefix(name, "runtime.")
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "cfn=("); ok {
			id, name, _ := strings.Cut(rest, ")")
			if name = strings.TrimSpace(name); name != "" {
				names[id] = name
				symbols = symbols || strings.HasPrefix(name, "runtime.")
			}
			callee = names[id]
			continue
		}
		if rest, ok := strings.CutPrefix(line, "calls="); ok && callee == "runtime.gcStart" {
			c, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				return 0, err
			}
			n += c
		}
	}
	if !symbols {
		return -1, sc.Err()
	}
	return n, sc.Err()
}

func parseTotal(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "totals:" {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no totals line (dump not complete yet)")
}

// servedHeader is what the upstreams say about who served.
const servedHeader = "X-Served-Env"

// upstreams are the inner service's stable and gray versions.
type upstreams struct {
	stable, gray string
	servers      []*http.Server
}

func startUpstreams() (*upstreams, error) {
	u := &upstreams{}
	for _, env := range []string{"stable", "gray"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			u.close()
			return nil, err
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set(servedHeader, env)
			_, _ = io.WriteString(w, env+"\n")
		})}
		go func() { _ = srv.Serve(l) }()
		u.servers = append(u.servers, srv)
		if env == "stable" {
			u.stable = l.Addr().String()
		} else {
			u.gray = l.Addr().String()
		}
	}
	return u, nil
}

func (u *upstreams) close() {
	for _, s := range u.servers {
		_ = s.Close()
	}
}
