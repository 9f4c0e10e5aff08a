package loadbench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// The harness: state shared by every run (ports, the upstream and no-op
// processes, the quiet gate) and the loop that runs one configuration
// through its fixed rates and step-up. runner.go starts and stops a run's
// own processes.

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
	h.upstream, err = startProc(h.logDir, "upstream", h.plan, h.plan.rest, o.Self, "upstream", "--stable", h.ports.stable, "--gray", h.ports.gray)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, h.upstream, "upstream", 10*time.Second, func() error {
		return errors.Join(tcpOpen(h.ports.stable)(), tcpOpen(h.ports.gray)())
	}); err != nil {
		h.close()
		return nil, err
	}
	h.noop, err = startProc(h.logDir, "noop-extproc", h.plan, h.plan.rest, o.Self, "noop", "--listen", h.ports.noop)
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
		return steps, run, fmt.Errorf("%s exited during the run: %w\n%s", r.proc.name, r.proc.err, r.proc.logTail(2000))
	}
	if r.envoy.exited() {
		return steps, run, fmt.Errorf("envoy exited during the run: %w\n%s", r.envoy.err, r.envoy.logTail(2000))
	}
	return steps, run, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
