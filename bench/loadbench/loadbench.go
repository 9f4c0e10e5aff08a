// Package loadbench measures graymesh through a real Envoy, side by side
// with what it is compared to: Envoy alone (B0), a no-op ext_proc server
// (E0), the same decision in an Envoy Lua filter (L1), graymesh with its
// production settings (C1) and C1 with one knob changed at a time.
//
// Every configuration runs one Envoy (--concurrency 1) with the same
// listener, routes and clusters, built by graymesh's own xds package; only
// the filter chain changes. Load is open loop (vegeta's constant pacer) at
// fixed rates and then a step-up until a step is no longer sustainable;
// configurations are interleaved round by round. Each step records latency
// percentiles from the scheduled send time, errors, CPU per request of
// every process from /proc, and checks routing twice: every response's
// serving environment against graymesh's decision for that caller, and
// Envoy's per-cluster request counters against the expected split.
package loadbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
)

// Options configure a run. Zero values take the defaults of a full run.
type Options struct {
	// Envoy is an Envoy 1.40 binary; Graymesh the graymesh binary; Self
	// the loadbench binary, which runs the upstream and the no-op ext_proc
	// server as child processes ("loadbench upstream", "loadbench noop").
	Envoy, Graymesh, Self string
	// WorkDir receives configs, logs and profiles.
	WorkDir string
	// Configs to run, by name; empty runs every configuration.
	Configs []string
	// Rounds of every configuration, interleaved.
	Rounds int
	// Fixed rates (requests/s) every configuration runs in every round.
	Fixed []int
	// Ladder rates, ascending, tried after the fixed rates until a step
	// is not sustainable.
	Ladder []int
	// FixedDuration and StepDuration are the length of one fixed-rate
	// step and one ladder step.
	FixedDuration, StepDuration time.Duration
	// Warmup runs before the first step of every run (at WarmupRate), so
	// every caller's token is verified once and connections are open.
	Warmup     time.Duration
	WarmupRate int
	// Subjects is the number of distinct callers.
	Subjects int
	// MaxP99 is the sustainable latency bound (the issue's: 5 ms); MaxP50
	// the bound of the step-up's knee (default 5 ms too, on the median).
	MaxP99, MaxP50 time.Duration
	// MessageTimeout overrides the ext_proc message_timeout (0: graymesh's
	// production default, 50 ms). The smoke test raises it so that a busy
	// CI machine cannot turn a slow decision into a fail-open.
	MessageTimeout time.Duration
	// Pin pins Envoy and the rest to separate cores with taskset; PinSelf
	// also pins this process (the load client) to the rest's core.
	Pin, PinSelf bool
	// Profile: "auto" profiles graymesh when a target is missed, "always",
	// or "never".
	Profile string
	// ProfileRate (default: the targets' 1,000 rps) and ProfileDuration
	// shape the profiling run; the rate is lowered to C1's maximum rate
	// (p50 bound) when that is lower.
	ProfileRate     int
	ProfileDuration time.Duration
	// QuietBudget bounds the total time the harness may wait for other
	// processes to quiet down: before every run and before re-measuring a
	// step that other load disturbed (0: 3 minutes; negative: never wait
	// or re-measure).
	QuietBudget time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Defaults are a full `make bench` run.
func (o *Options) defaults() {
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Fixed == nil {
		o.Fixed = []int{500, 1000, 2000}
	}
	if o.Ladder == nil {
		o.Ladder = []int{2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000}
	}
	if o.FixedDuration == 0 {
		o.FixedDuration = 3 * time.Second
	}
	if o.StepDuration == 0 {
		o.StepDuration = 2 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.WarmupRate == 0 {
		o.WarmupRate = 1000
	}
	if o.Subjects == 0 {
		o.Subjects = 1000
	}
	if o.MaxP99 == 0 {
		o.MaxP99 = 5 * time.Millisecond
	}
	if o.MaxP50 == 0 {
		o.MaxP50 = 5 * time.Millisecond
	}
	if o.Profile == "" {
		o.Profile = "auto"
	}
	if o.ProfileRate == 0 {
		o.ProfileRate = TargetRate
	}
	if o.ProfileDuration == 0 {
		o.ProfileDuration = 10 * time.Second
	}
	if o.QuietBudget == 0 {
		o.QuietBudget = 3 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Result is everything one run measured.
type Result struct {
	Options  Options   `json:"-"`
	Configs  []Config  `json:"-"`
	Started  time.Time `json:"started"`
	Took     time.Duration
	Machine  Machine `json:"machine"`
	CPUPlan  string  `json:"cpu_plan"`
	Steps    []Step  `json:"steps"`
	Runs     []Run   `json:"runs"`
	Profile  *Profile
	Subjects int `json:"subjects"`
	// LoadAvg is /proc/loadavg before and after the run.
	LoadAvgStart, LoadAvgEnd string
	// QuietWaited is how long the harness waited for the machine to quiet
	// down; Remeasured how many steps it measured again because other
	// processes were busy during the first try (the report uses the
	// second; results.json keeps both).
	QuietWaited time.Duration `json:"quiet_waited_ns"`
	Remeasured  int           `json:"remeasured"`
	Discarded   []Step        `json:"discarded_steps,omitempty"`
	// WantGrayShare is the share of callers graymesh sends to gray.
	WantGrayShare float64 `json:"want_gray_share"`
}

// Run is one configuration in one round.
type Run struct {
	Config string `json:"config"`
	Round  int    `json:"round"`
	// MaxRate is the highest rate at and below which every step was
	// sustainable (0 when even the lowest was not); MaxRateP50 the same
	// for keeping up (p50 bound).
	MaxRate    int `json:"max_rate"`
	MaxRateP50 int `json:"max_rate_p50"`
	// RoutingOK: every step of the run routed correctly.
	RoutingOK bool `json:"routing_ok"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU, Kernel, Go, Envoy string
	NumCPU                 int
}

// harness is the state shared by every run.
type harness struct {
	opts     Options
	plan     cpuPlan
	ports    ports
	cfg      *config.Config
	policy   *gray.Policy
	secret   []byte
	upstream *proc
	noop     *proc
	admin    *http.Client
	clkTck   int64
	logDir   string
	// quietWaited is the quiet budget spent; discarded the steps measured
	// again.
	quietWaited time.Duration
	discarded   []Step
}

// disturbed is how much other load plus steal (cores) makes a step worth
// measuring again; maxRemeasure caps how many steps one bench re-measures.
const (
	disturbed    = 0.25
	maxRemeasure = 40
)

// waitQuiet waits, within the quiet budget and at most 30 s at a time,
// until processes outside the run use less than 0.15 cores over half a
// second. The run's own processes are idle whenever it is called.
func (h *harness) waitQuiet(ctx context.Context) bool {
	waited, quiet := WaitQuiet(ctx, min(30*time.Second, h.opts.QuietBudget-h.quietWaited), h.clkTck)
	h.quietWaited += waited
	return quiet
}

// WaitQuiet waits up to max until the machine's processes use less than
// 0.15 cores over half a second (clkTck is USER_HZ; 0 asks getconf). It
// returns how long it waited and whether the machine was quiet.
func WaitQuiet(ctx context.Context, max time.Duration, clkTck int64) (time.Duration, bool) {
	if clkTck == 0 {
		clkTck = clockTicks()
	}
	start := time.Now()
	for {
		b0, _, _, err := machineTicks()
		if err != nil {
			return time.Since(start), false
		}
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(500 * time.Millisecond):
		}
		b1, _, _, err := machineTicks()
		if err != nil {
			return time.Since(start), false
		}
		if float64(b1-b0)/float64(clkTck)/0.5 < 0.15 {
			return time.Since(start), true
		}
		if time.Since(start) >= max {
			return time.Since(start), false
		}
	}
}

// runner is one configuration in one round.
type runner struct {
	h     *harness
	cfg   Config
	round int
	envoy *proc
	proc  *proc // graymesh or the no-op server; nil for B0 and L1
	// ownsProc: proc was started for this run (graymesh) and stops with it.
	ownsProc bool
	work     *workload
	client   *http.Client
	// pprof, when set, starts graymesh with --pprof on it.
	pprof string
}

// RunBench runs every configuration for o.Rounds interleaved rounds.
func RunBench(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if o.Envoy == "" || o.Graymesh == "" || o.Self == "" || o.WorkDir == "" {
		return nil, errors.New("loadbench: Envoy, Graymesh, Self and WorkDir are required")
	}
	configs, err := selectConfigs(o.Configs)
	if err != nil {
		return nil, err
	}
	res := &Result{Options: o, Configs: configs, Started: time.Now(), Subjects: o.Subjects, LoadAvgStart: loadAvg()}
	h, err := newHarness(ctx, o)
	if err != nil {
		return nil, err
	}
	defer h.close()
	res.Machine = machine(o.Envoy)
	res.CPUPlan = h.plan.why
	for _, s := range subjects(o.Subjects) {
		d := h.policy.Decide(gray.Request{Authorization: "Bearer " + mustToken(h.secret, s)})
		if d.Env != "" && d.Env != config.Stable {
			res.WantGrayShare++
		}
	}
	res.WantGrayShare /= float64(o.Subjects)
	for round := 1; round <= o.Rounds; round++ {
		// Rotate the order so no configuration always goes first.
		for i := range configs {
			c := configs[(i+round-1)%len(configs)]
			h.waitQuiet(ctx)
			steps, run, err := h.runConfig(ctx, c, round, "")
			res.Steps = append(res.Steps, steps...)
			if err != nil {
				return res, fmt.Errorf("%s round %d: %w", c.Name, round, err)
			}
			res.Runs = append(res.Runs, run)
		}
	}
	want := o.Profile == "always"
	if o.Profile == "auto" {
		for _, t := range Evaluate(res, nil) {
			want = want || (t.Load && !t.Met)
		}
	}
	if want {
		// At a rate C1 keeps up with, so the profile shows work, not
		// overload.
		rate := o.ProfileRate
		if mr := median(maxRatesP50(res, "C1")); mr > 0 && int(mr) < rate {
			rate = int(mr)
		}
		p, err := h.profile(ctx, rate)
		if err != nil {
			return res, fmt.Errorf("profiling graymesh: %w", err)
		}
		res.Profile = p
	}
	res.Took = time.Since(res.Started)
	res.LoadAvgEnd = loadAvg()
	res.QuietWaited, res.Remeasured, res.Discarded = h.quietWaited, len(h.discarded), h.discarded
	return res, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func mustToken(secret []byte, subject string) string {
	t, err := subjectToken(secret, subject, time.Now())
	if err != nil {
		panic(err)
	}
	return t
}

func selectConfigs(names []string) ([]Config, error) {
	all := Configs()
	if len(names) == 0 {
		return all, nil
	}
	var out []Config
	for _, n := range names {
		found := false
		for _, c := range all {
			if strings.EqualFold(c.Name, n) {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("loadbench: no configuration %q", n)
		}
	}
	return out, nil
}

func newHarness(ctx context.Context, o Options) (*harness, error) {
	h := &harness{opts: o, plan: planCPUs(o.Pin), admin: &http.Client{Timeout: 5 * time.Second}, clkTck: clockTicks()}
	if o.PinSelf && h.plan.pinned {
		if err := pinSelf(h.plan.rest); err != nil {
			return nil, err
		}
		// Two Ps even on one core: while the pacer's thread sleeps in
		// nanosleep(2), the other P runs the workers and the netpoller.
		runtime.GOMAXPROCS(2)
	}
	h.logDir = filepath.Join(o.WorkDir, "logs")
	if err := os.MkdirAll(h.logDir, 0o755); err != nil {
		return nil, err
	}
	p, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	h.ports = ports{
		listener: p[0], envoyAdmin: p[1],
		extproc: loopback(p[2]), xds: loopback(p[3]), admin: loopback(p[4]), pprof: loopback(p[5]), noop: loopback(p[6]),
		stable: loopback(p[7]), gray: loopback(p[8]),
	}
	h.secret = []byte("loadbench-hs256-secret-0123456789abcdef")
	if err := os.WriteFile(filepath.Join(o.WorkDir, "hs.secret"), h.secret, 0o600); err != nil {
		return nil, err
	}
	path := filepath.Join(o.WorkDir, "graymesh.yaml")
	data := h.ports.graymeshYAML(productionCacheSize, o.MessageTimeout)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	if h.cfg, err = config.Parse(data, path); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	if h.policy, err = gray.Compile(h.cfg); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	h.upstream, err = startProc(h.logDir, "upstream", h.plan, h.plan.rest, nil, o.Self, "upstream", "--stable", h.ports.stable, "--gray", h.ports.gray)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, h.upstream, "upstream", 10*time.Second, func() error {
		return errors.Join(tcpOpen(h.ports.stable)(), tcpOpen(h.ports.gray)())
	}); err != nil {
		h.close()
		return nil, err
	}
	h.noop, err = startProc(h.logDir, "noop-extproc", h.plan, h.plan.rest, nil, o.Self, "noop", "--listen", h.ports.noop)
	if err != nil {
		h.close()
		return nil, err
	}
	if err := waitReady(ctx, h.noop, "no-op ext_proc server", 10*time.Second, tcpOpen(h.ports.noop)); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	h.upstream.stop(3 * time.Second)
	h.noop.stop(3 * time.Second)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.opts.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// runConfig runs one configuration once: start its processes, warm up,
// the fixed rates, then the ladder until a step is not sustainable.
func (h *harness) runConfig(ctx context.Context, c Config, round int, pprofAddr string) ([]Step, Run, error) {
	r := &runner{h: h, cfg: c, round: round, pprof: pprofAddr}
	run := Run{Config: c.Name, Round: round, RoutingOK: true}
	if err := r.start(ctx); err != nil {
		r.stop()
		return nil, run, err
	}
	defer r.stop()
	var steps []Step
	// Warm-up: every caller's token verified once, connections open.
	if _, err := r.attack(ctx, h.opts.WarmupRate, h.opts.Warmup, &Step{}); err != nil {
		return nil, run, err
	}
	ok, strict := true, true
	record := func(rate int, d time.Duration, kind string) error {
		st, err := r.measure(ctx, rate, d, kind)
		if err != nil {
			return err
		}
		if st.OtherCPU+st.StealCPU > disturbed && h.quietWaited < h.opts.QuietBudget && len(h.discarded) < maxRemeasure {
			h.logf("round %d %s %d rps: other processes used %.2f cores and the hypervisor stole %.2f; measuring again", round, c.Name, rate, st.OtherCPU, st.StealCPU)
			h.discarded = append(h.discarded, st)
			h.waitQuiet(ctx)
			if st, err = r.measure(ctx, rate, d, kind); err != nil {
				return err
			}
		}
		steps = append(steps, st)
		run.RoutingOK = run.RoutingOK && st.RoutingOK
		if strict && st.Sustainable {
			run.MaxRate = rate
		} else {
			strict = false
		}
		if ok && st.KeepsUp {
			run.MaxRateP50 = rate
		} else {
			ok = false
		}
		h.logf("round %d %-10s %-6s %6d rps: sent %6d err %d p50 %6.0fµs p99 %7.0fµs p99.9 %7.0fµs lag p99 %.0fµs late %d cpu envoy %.0fµs extproc %.0fµs client %.0fµs other %.2f cores routing %v (gray %d/%d stable %d/%d) %s",
			round, c.Name, kind, rate, st.Sent, st.Errors, us(st.P50), us(st.P99), us(st.P999), us(st.SendLagP99), st.Late,
			st.CPU["envoy"], st.CPU["extproc"], st.CPU["client"], st.OtherCPU, st.RoutingOK, st.GotGray, st.WantGray, st.GotStable, st.WantStable, st.FirstError)
		return nil
	}
	for _, rate := range h.opts.Fixed {
		if err := record(rate, h.opts.FixedDuration, "fixed"); err != nil {
			return steps, run, err
		}
	}
	for _, rate := range h.opts.Ladder {
		if !ok {
			break
		}
		if err := record(rate, h.opts.StepDuration, "ladder"); err != nil {
			return steps, run, err
		}
	}
	if r.proc != nil && r.proc.exited() {
		return steps, run, fmt.Errorf("%s exited during the run: %v\n%s", r.proc.name, r.proc.err, r.proc.logTail(2000))
	}
	if r.envoy.exited() {
		return steps, run, fmt.Errorf("envoy exited during the run: %v\n%s", r.envoy.err, r.envoy.logTail(2000))
	}
	return steps, run, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// start launches the configuration's processor and Envoy and waits until
// a request goes through.
func (r *runner) start(ctx context.Context) error {
	h, c := r.h, r.cfg
	tag := fmt.Sprintf("r%d-%s", r.round, c.Name)
	if r.pprof != "" {
		tag += "-profile"
	}
	extProcAddr := h.ports.extproc
	switch c.proc {
	case procNoop:
		extProcAddr = h.ports.noop
		r.proc = h.noop
	case procGraymesh:
		cfgPath := filepath.Join(h.opts.WorkDir, "graymesh-"+c.Name+".yaml")
		if err := os.WriteFile(cfgPath, h.ports.graymeshYAML(c.cacheSize, h.opts.MessageTimeout), 0o600); err != nil {
			return err
		}
		stateDir := filepath.Join(h.opts.WorkDir, "state", tag)
		if err := os.RemoveAll(stateDir); err != nil {
			return err
		}
		args := []string{"serve", "--config", cfgPath, "--state-dir", stateDir, "--log-level", "info"}
		if r.pprof != "" {
			args = append(args, "--pprof", r.pprof)
		}
		p, err := startProc(h.logDir, tag+"-graymesh", h.plan, h.plan.rest, nil, h.opts.Graymesh, args...)
		if err != nil {
			return err
		}
		r.proc, r.ownsProc = p, true
		if err := waitReady(ctx, p, "graymesh", 15*time.Second, httpOK(h.admin, "http://"+h.ports.admin+"/readyz", "")); err != nil {
			return err
		}
	}
	boot, err := bootstrap(c, h.cfg, h.secret, extProcAddr, h.ports.envoyAdmin)
	if err != nil {
		return err
	}
	bootPath := filepath.Join(h.opts.WorkDir, "envoy-"+c.Name+".json")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return err
	}
	r.envoy, err = startProc(h.logDir, tag+"-envoy", h.plan, h.plan.envoy, nil, h.opts.Envoy,
		"-c", bootPath, "--concurrency", "1", "--disable-hot-restart", "-l", "warn")
	if err != nil {
		return err
	}
	if err := waitReady(ctx, r.envoy, "envoy", 20*time.Second, httpOK(h.admin, fmt.Sprintf("http://127.0.0.1:%d/ready", h.ports.envoyAdmin), "LIVE")); err != nil {
		return err
	}
	if r.work, err = newWorkload(c, h.policy, h.secret, h.ports.listener, h.opts.Subjects, time.Now()); err != nil {
		return err
	}
	r.client = &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	first := r.work.targets[0]
	return waitReady(ctx, r.envoy, "envoy listener", 10*time.Second, func() error {
		req, err := first.Request()
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("listener: %s", resp.Status)
		}
		return nil
	})
}

func (r *runner) stop() {
	if r.client != nil {
		r.client.CloseIdleConnections()
	}
	r.envoy.stop(5 * time.Second)
	if r.ownsProc {
		r.proc.stop(5 * time.Second)
	}
}

// machine describes this machine.
func machine(envoyBin string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := execOutput(envoyBin, "--version"); err == nil {
		if _, v, ok := strings.Cut(strings.TrimSpace(out), "version: "); ok {
			m.Envoy = v
		}
	}
	return m
}
