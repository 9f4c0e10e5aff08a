package loadbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"golang.org/x/sys/unix"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Step is one fixed-rate attack on one configuration in one round.
type Step struct {
	Config string `json:"config"`
	Round  int    `json:"round"`
	// Kind is "fixed" (always run) or "ladder" (the step-up).
	Kind     string        `json:"kind"`
	Rate     int           `json:"rate"`
	Duration time.Duration `json:"duration_ns"`
	Sent     int           `json:"sent"`
	Errors   int           `json:"errors"`
	// FirstError is one error, for the log.
	FirstError string `json:"first_error,omitempty"`
	// Late counts requests the client sent more than 1 ms after their
	// scheduled time (a client that cannot keep pace).
	Late int `json:"late"`
	// P50…P999 are measured from each request's scheduled send time, not
	// from when the client managed to send it, so a stall anywhere
	// (including the client's core) counts against the system: no
	// coordinated omission.
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	// SendLagP50 and SendLagP99 are how late the client sent requests
	// relative to their schedule.
	SendLagP50 time.Duration `json:"send_lag_p50_ns"`
	SendLagP99 time.Duration `json:"send_lag_p99_ns"`
	// ServiceP50 and ServiceP99 are vegeta's own latency, from the actual
	// send.
	ServiceP50 time.Duration `json:"service_p50_ns"`
	ServiceP99 time.Duration `json:"service_p99_ns"`
	// CPU is CPU microseconds per request by process: envoy, extproc
	// (graymesh or the no-op server), upstream, client.
	CPU map[string]float64 `json:"cpu_us_per_req"`
	// OtherCPU is how many cores, on average over the step, processes
	// outside the run kept busy (/proc/stat's user+nice+system minus the
	// run's own processes). IRQCPU is interrupt and softirq time (on
	// loopback mostly the run's own packets), StealCPU the time the
	// hypervisor gave this machine's vCPUs to someone else.
	OtherCPU float64 `json:"other_cpu_cores"`
	IRQCPU   float64 `json:"irq_cpu_cores"`
	StealCPU float64 `json:"steal_cpu_cores"`
	// Routing: what must have reached each environment and what Envoy's
	// per-cluster stats say did; Misrouted counts responses served by the
	// wrong environment; Problems sums Envoy's filter failure counters
	// (ext_proc fail-open, timeouts, Lua errors…), by name in ProblemStats.
	WantGray     int            `json:"want_gray"`
	WantStable   int            `json:"want_stable"`
	GotGray      int64          `json:"got_gray"`
	GotStable    int64          `json:"got_stable"`
	Misrouted    int            `json:"misrouted"`
	Problems     int64          `json:"problems"`
	ProblemStats map[string]int `json:"problem_stats,omitempty"`
	RoutingOK    bool           `json:"routing_ok"`
	// Sustainable (the definition): 0 errors, routing correct,
	// p99 under MaxP99 and the client sent ≥ 97% of the schedule.
	Sustainable bool `json:"sustainable"`
	// KeepsUp is the same with p50 under MaxP50 instead of the p99 bound:
	// the knee of the median, which a virtual machine's wake-up tail does
	// not move. The step-up goes on while steps keep up.
	KeepsUp bool `json:"keeps_up"`
}

// attackResult is what the harness keeps of one vegeta result.
type sample struct {
	lat, svc, lag time.Duration
}

// measure runs one attack at rate for dur and checks every response.
func (r *runner) measure(ctx context.Context, rate int, dur time.Duration, kind string) (Step, error) {
	st := Step{Config: r.cfg.Name, Round: r.round, Kind: kind, Rate: rate, Duration: dur}
	before, err := r.envoyStats()
	if err != nil {
		return st, err
	}
	cpu0, err := r.cpuSnapshot()
	if err != nil {
		return st, err
	}
	busy0, irq0, steal0, err := machineTicks()
	if err != nil {
		return st, err
	}
	t0 := time.Now()
	samples, err := r.attack(ctx, rate, dur, &st)
	if err != nil {
		return st, err
	}
	busy1, irq1, steal1, err := machineTicks()
	if err != nil {
		return st, err
	}
	elapsed := time.Since(t0)
	cpu1, err := r.cpuSnapshot()
	if err != nil {
		return st, err
	}
	after, err := r.envoyStats()
	if err != nil {
		return st, err
	}
	st.CPU = map[string]float64{}
	own := int64(0)
	for role, c0 := range cpu0 {
		own += cpu1[role] - c0
		if st.Sent > 0 {
			st.CPU[role] = float64(cpu1[role]-c0) * 1e6 / float64(r.h.clkTck) / float64(st.Sent)
		}
	}
	cores := func(ticks int64) float64 { return float64(max(ticks, 0)) / float64(r.h.clkTck) / elapsed.Seconds() }
	st.OtherCPU, st.IRQCPU, st.StealCPU = cores(busy1-busy0-own), cores(irq1-irq0), cores(steal1-steal0)
	stable, grayName := "cluster.shop|stable.upstream_rq_total", "cluster.shop|gray.upstream_rq_total"
	st.GotStable = after[stable] - before[stable]
	st.GotGray = after[grayName] - before[grayName]
	for name, v := range after {
		if problemStat.MatchString(name) && v != before[name] {
			if st.ProblemStats == nil {
				st.ProblemStats = map[string]int{}
			}
			st.ProblemStats[strings.TrimPrefix(name, "http.ingress.")] = int(v - before[name])
			st.Problems += v - before[name]
		}
	}
	st.RoutingOK = st.Misrouted == 0 && st.Problems == 0 &&
		st.GotGray == int64(st.WantGray) && st.GotStable == int64(st.WantStable)
	lats := make([]time.Duration, len(samples))
	svcs := make([]time.Duration, len(samples))
	lags := make([]time.Duration, len(samples))
	for i, s := range samples {
		lats[i], svcs[i], lags[i] = s.lat, s.svc, s.lag
	}
	slices.Sort(lats)
	slices.Sort(svcs)
	slices.Sort(lags)
	st.SendLagP50, st.SendLagP99 = quantile(lags, 0.50), quantile(lags, 0.99)
	st.P50, st.P90, st.P99, st.P999 = quantile(lats, 0.50), quantile(lats, 0.90), quantile(lats, 0.99), quantile(lats, 0.999)
	if len(lats) > 0 {
		st.Max = lats[len(lats)-1]
	}
	st.ServiceP50, st.ServiceP99 = quantile(svcs, 0.50), quantile(svcs, 0.99)
	expected := int(float64(rate) * dur.Seconds())
	delivered := st.Errors == 0 && st.RoutingOK && st.Sent >= expected*97/100
	st.Sustainable = delivered && st.P99 < r.h.opts.MaxP99
	st.KeepsUp = delivered && st.P50 < r.h.opts.MaxP50
	return st, nil
}

// attack sends rate requests per second for dur, open loop: vegeta's
// pacer schedules every request at a fixed time whatever the responses
// do, and spawns workers when the ones it has are all waiting.
func (r *runner) attack(ctx context.Context, rate int, dur time.Duration, st *Step) ([]sample, error) {
	atk := vegeta.NewAttacker(
		vegeta.Client(r.client),
		vegeta.Workers(16),
		vegeta.MaxBody(0),
	)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	pacer := precisePacer{vegeta.ConstantPacer{Freq: rate, Per: time.Second}}
	interval := time.Second / time.Duration(rate)
	// vegeta's ConstantPacer schedules hit n (from 0) at began+(n+1)·interval,
	// and the n-th hit gets Seq n. began is taken just before Attack
	// starts its own clock, so latencies err by at most that gap (< 1 µs),
	// upwards.
	began := time.Now()
	results := atk.Attack(vegeta.NewStaticTargeter(r.work.targets...), pacer, dur, r.cfg.Name)
	samples := make([]sample, 0, int(float64(rate)*dur.Seconds())+16)
	for res := range results {
		st.Sent++
		want := r.work.want[res.URL]
		if want == config.Stable {
			st.WantStable++
		} else {
			st.WantGray++
		}
		scheduled := began.Add(time.Duration(res.Seq+1) * interval)
		lag := max(res.Timestamp.Sub(scheduled), 0)
		if lag > time.Millisecond {
			st.Late++
		}
		samples = append(samples, sample{lat: lag + res.Latency, svc: res.Latency, lag: lag})
		if res.Error != "" || res.Code != http.StatusOK {
			st.Errors++
			if st.FirstError == "" {
				st.FirstError = fmt.Sprintf("%d %s", res.Code, res.Error)
			}
			continue
		}
		if got := res.Headers.Get(ServedEnvHeader); got != want {
			st.Misrouted++
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return samples, nil
}

// precisePacer is vegeta's constant pacer with a precise sleep. vegeta
// sleeps with time.Sleep, and the Go runtime wakes a sleeper of less than
// a millisecond only at millisecond granularity (netpoll's epoll timeout),
// which would put up to a millisecond of client-side lag on requests at
// these rates. This pacer sleeps the pacing thread with nanosleep(2)
// (microsecond precision) and tells vegeta not to sleep at all; the
// schedule is vegeta's own.
type precisePacer struct{ vegeta.ConstantPacer }

// Pace implements vegeta.Pacer.
func (p precisePacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	wait, stop := p.ConstantPacer.Pace(elapsed, hits)
	if stop || wait <= 0 {
		return wait, stop
	}
	ts := unix.NsecToTimespec(int64(wait))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
	return 0, false
}

// quantile of sorted durations: the smallest value with at least q of
// the samples at or below it.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// problemStat names Envoy counters that mean a filter did not do its job:
// ext_proc failing open or timing out, route cache clears ignored,
// rejected mutations, Lua script errors.
var problemStat = regexp.MustCompile(`^http\.ingress\.(ext_proc\.(failure_mode_allowed|message_timeouts|streams_failed|clear_route_cache_ignored|rejected_header_mutations|spurious_msgs_received)|lua\.errors)$`)

// statsFilter is what the harness reads from Envoy's admin /stats.
const statsFilter = `^(cluster\.shop\|[a-z]+\.upstream_rq_total|http\.ingress\..*)$`

// envoyStats reads Envoy's counters from the admin API.
func (r *runner) envoyStats() (map[string]int64, error) {
	resp, err := r.h.admin.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?format=json&filter=%s", r.h.ports.envoyAdmin, url.QueryEscape(statsFilter)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("envoy /stats: %s", resp.Status)
	}
	var body struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("envoy /stats: %w", err)
	}
	out := map[string]int64{}
	for _, s := range body.Stats {
		var v int64
		if s.Name == "" || json.Unmarshal(s.Value, &v) != nil {
			continue // histograms, text readouts
		}
		out[s.Name] = v
	}
	return out, nil
}

// machineTicks is the machine's CPU time so far, in clock ticks, from
// the first line of /proc/stat: busy is user+nice+system (what processes
// are charged; guest time is already in user), irq is irq+softirq (charged
// to no process), steal is time the hypervisor ran something else.
func machineTicks() (busy, irq, steal int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	v := make([]int64, 9)
	for i := 1; i < 9; i++ {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	return v[1] + v[2] + v[3], v[6] + v[7], v[8], nil
}

// cpuSnapshot reads the CPU ticks of every process in the run.
func (r *runner) cpuSnapshot() (map[string]int64, error) {
	pids := map[string]int{"envoy": r.envoy.pid(), "upstream": r.h.upstream.pid(), "client": os.Getpid()}
	if r.proc != nil {
		pids["extproc"] = r.proc.pid()
	}
	if r.proc != r.h.noop {
		// Idle in this run, but one of the run's own processes.
		pids["noop-idle"] = r.h.noop.pid()
	}
	out := map[string]int64{}
	for role, pid := range pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("cpu of %s: %w", role, err)
		}
		out[role] = t
	}
	return out, nil
}
