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
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
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
