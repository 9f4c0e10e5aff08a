// Package analyser runs the analysis of every analysed release: a window
// every interval, judged by package analysis, and the verdict acted on
// through the change pipeline (package control) — a schedule step on a
// pass, on_fail or on_critical on a fail — exactly as an operator's action
// would be, or, in Kubernetes mode, on the fleet's object.
package analyser

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/graymesh/graymesh/internal/adapters/accesslog"
	"github.com/graymesh/graymesh/internal/adapters/promsource"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// maxWindows is how many windows of each release the admin API keeps (in
// memory: a restart starts the history anew).
const maxWindows = 100

// Window is one judged window of a release, as `graymesh analysis` shows
// it: the sides and tests, the verdict, and what graymesh did about it.
type Window struct {
	Index         int       `json:"index"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	ConfigVersion string    `json:"config_version"`
	// State, Percent and Step are the release's before the action: the
	// configured percentage the shares compare with.
	State   string  `json:"state"`
	Percent float64 `json:"configured_percent"`
	Step    int     `json:"schedule_step"`
	analysis.Report
	// Error is why the source gave no observations (the window is then
	// inconclusive).
	Error string `json:"error,omitempty"`
	// Action is what the verdict did; ActionError why it could not.
	Action      string `json:"action"`
	ActionError string `json:"action_error,omitempty"`
	FleetWindow
}

// FleetWindow is what a window of the fleet analyser adds (Kubernetes
// mode; empty on one node).
type FleetWindow struct {
	// Generation is the GrayRelease's generation the window was judged
	// and acted on.
	Generation int64 `json:"generation,omitempty"`
	// Nodes is how many nodes' evidence was merged; NodesReporting how
	// many nodes were publishing evidence of the release at the time.
	Nodes          int `json:"nodes,omitempty"`
	NodesReporting int `json:"nodes_reporting,omitempty"`
	// ActedBy is the analyser process that judged the window and took its
	// action.
	ActedBy string `json:"acted_by,omitempty"`
}

// Status is a release's analysis as GET /v1/releases/{name}/analysis
// answers it.
type Status struct {
	Release       string           `json:"release"`
	Env           string           `json:"env"`
	Services      []string         `json:"services"`
	Settings      *config.Analysis `json:"settings"`
	State         string           `json:"state"`
	Percent       float64          `json:"percent"`
	ScheduleStep  int              `json:"schedule_step"`
	ScheduleSteps int              `json:"schedule_steps"`
	Windows       []Window         `json:"windows"`
	// FleetError is why the fleet's windows could not be read (Kubernetes
	// mode).
	FleetError string `json:"fleet_error,omitempty"`
}

// Runner runs every analysed release's windows and acts on their verdicts
// through the pipeline: the freeze, rollback and kill it applies are the
// admin API's actions.
type Runner struct {
	pipe      *control.Pipeline
	log       *slog.Logger
	collector *analysis.Collector
	// Receiver is Envoy's access-log stream, the embedded source's
	// evidence; register it on a gRPC server.
	Receiver *accesslog.Receiver
	// source, when set, replaces every release's source (tests).
	source analysis.Source
	// fleet, in Kubernetes mode, is where this node publishes its evidence
	// and reads the fleet analyser's windows.
	fleet   FleetNode
	metrics *metrics
	tracer  trace.Tracer
	changed chan struct{}

	mu      sync.Mutex
	loops   map[string]loopKey
	cancel  map[string]context.CancelFunc
	history map[string][]Window
	index   map[string]int
	// rollouts are the sequential tests of the releases being analysed,
	// kept from window to window (in memory: a restart starts them anew).
	rollouts map[string]*rollout
}

// rollout is one release's sequential test and what it was started on; a
// change of either starts a new one.
type rollout struct {
	services string
	test     *analysis.Sequential
}

// loopKey is what a release's loop is started with; a change of it
// restarts the loop (thresholds are read afresh every window).
type loopKey struct {
	env, services, source, url, labels, method string
	interval                                   time.Duration
}

// New is a runner; source, when set, gives every analysed release's
// observations instead of Envoy's access log or Prometheus (tests). Its
// pipeline is given by Attach, before Run.
func New(log *slog.Logger, reg prometheus.Registerer, source analysis.Source) *Runner {
	a := &Runner{
		log: log.With("component", "analysis"), collector: analysis.NewCollector(), source: source, metrics: newMetrics(reg, nodePrefix),
		tracer: otel.Tracer("github.com/graymesh/graymesh/internal/runtime/analyser"), changed: make(chan struct{}, 1),
		loops: map[string]loopKey{}, cancel: map[string]context.CancelFunc{}, history: map[string][]Window{}, index: map[string]int{},
		rollouts: map[string]*rollout{},
	}
	a.Receiver = accesslog.New(a.collector.Observe, log)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: nodePrefix + "_stress_entries_total",
		Help: "Access-log entries of stress-test (shadow) requests, left out of the analysis.",
	}, func() float64 { return float64(a.Receiver.Stress.Load()) }))
	return a
}

// Attach gives the runner the pipeline it reads the config in force from
// and acts through. The pipeline tells the runner of changes
// (ConfigChanged), so the two are built one after the other.
func (a *Runner) Attach(p *control.Pipeline) { a.pipe = p }

// Sink keeps the access log's view of the routing plan current: a sink of
// the pipeline.
func (a *Runner) Sink() control.Sink {
	return control.SinkFunc(func(p *gray.Policy) error { a.Receiver.SetPlan(p.Plan); return nil })
}

// ConfigChanged tells the running runner to look at the config in force;
// it never blocks.
func (a *Runner) ConfigChanged() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// Run starts and stops the releases' loops as the config in force changes,
// until ctx is done.
func (a *Runner) Run(ctx context.Context) {
	a.sync(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
			a.sync(ctx)
		}
	}
}

func (a *Runner) sync(ctx context.Context) {
	cfg := a.pipe.Config()
	want := map[string]loopKey{}
	for i := range cfg.Releases {
		r := &cfg.Releases[i]
		if r.Analysis == nil {
			continue
		}
		want[r.Name] = loopKey{env: r.Env, services: fmt.Sprint(cfg.AnalysedServices(r)), source: r.Analysis.Source,
			url: r.Analysis.PrometheusURL, labels: fmt.Sprint(r.Analysis.PrometheusLabels), method: r.Analysis.Method, interval: r.Analysis.Interval.Duration}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, key := range a.loops {
		if want[name] != key {
			a.cancel[name]()
			delete(a.loops, name)
			delete(a.cancel, name)
			delete(a.rollouts, name)
			a.collector.Forget(name)
		}
	}
	for name, key := range want {
		if _, running := a.loops[name]; running {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		a.loops[name], a.cancel[name] = key, cancel
		go a.loop(lctx, name, key.interval)
	}
}

// loop judges one release's window every interval; in Kubernetes mode it
// publishes the node's evidence instead, for the fleet analyser.
func (a *Runner) loop(ctx context.Context, release string, interval time.Duration) {
	if on, _ := a.pipe.FleetMode(); on {
		a.publishLoop(ctx, release, interval)
		return
	}
	from := a.pipe.Clock().Now()
	if q, _, ok := query(a.pipe.Config(), release, from, from); ok {
		a.collector.Watch(q)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		to := a.pipe.Clock().Now()
		a.Window(ctx, release, from, to)
		from = to
	}
}

// query is release's window [from, to) in cfg, and the release; false
// when cfg does not analyse it.
func query(cfg *config.Config, release string, from, to time.Time) (analysis.Query, *config.Release, bool) {
	r := releaseNamed(cfg, release)
	if r == nil || r.Analysis == nil {
		return analysis.Query{}, nil, false
	}
	return analysis.Query{Release: r.Name, Env: r.Env, Services: cfg.AnalysedServices(r), From: from, To: to}, r, true
}

func (a *Runner) sourceFor(r *config.Release) (analysis.Source, error) {
	switch {
	case a.source != nil:
		return a.source, nil
	case r.Analysis.Source == config.SourcePrometheus:
		return prometheusSource(r.Analysis)
	}
	return a.collector, nil
}

// prometheusSource is the Prometheus server of an analysis with source
// prometheus.
func prometheusSource(a *config.Analysis) (*promsource.Source, error) {
	return promsource.New(a.PrometheusURL, a.PrometheusLabels, nil)
}

// Window judges release's window [from, to), acts on the verdict and
// records it. In Kubernetes mode it does nothing: a node never judges its
// own slice; it publishes its evidence (Publish) for the fleet analyser.
func (a *Runner) Window(ctx context.Context, release string, from, to time.Time) {
	if on, _ := a.pipe.FleetMode(); on {
		return
	}
	cfg := a.pipe.Config()
	q, r, ok := query(cfg, release, from, to)
	if !ok {
		return
	}
	w := Window{From: from, To: to, ConfigVersion: cfg.Version, State: r.State, Percent: r.PercentAt(to), Step: r.StepAt(to)}
	src, err := a.sourceFor(r)
	switch {
	case err != nil:
	case r.Analysis.Method == config.MethodFixed:
		var obs *analysis.Observations
		if obs, err = src.Collect(ctx, q); err == nil {
			w.Report = analysis.Judge(analysis.SettingsFrom(r.Analysis), obs)
		}
	default:
		var ev *analysis.Evidence
		if ev, err = collectEvidence(ctx, src, q); err == nil {
			w.Report = a.rolloutOf(q, r).Update(ev)
		}
	}
	if err != nil {
		w.Error = err.Error()
		w.Report = analysis.Report{Verdict: analysis.Inconclusive, Reason: "no observations: " + err.Error()}
	}
	w.Action, w.ActionError = a.act(r, &w, to)
	a.record(release, &w)
}

// collectEvidence is q's window from src as Evidence.
func collectEvidence(ctx context.Context, src analysis.Source, q analysis.Query) (*analysis.Evidence, error) {
	if es, ok := src.(analysis.EvidenceSource); ok {
		return es.CollectEvidence(ctx, q)
	}
	obs, err := src.Collect(ctx, q)
	if err != nil {
		return nil, err
	}
	return analysis.EvidenceFrom(q, obs), nil
}

// rolloutOf is release r's sequential test, started with the release's
// settings on its first window (or when its services changed), the
// thresholds read afresh every window.
func (a *Runner) rolloutOf(q analysis.Query, r *config.Release) *analysis.Sequential {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, services := analysis.SettingsFrom(r.Analysis), fmt.Sprint(q.Services)
	ro := a.rollouts[r.Name]
	if ro == nil || ro.services != services {
		ro = &rollout{services: services, test: analysis.NewSequential(s, q.Services)}
		a.rollouts[r.Name] = ro
	}
	ro.test.UpdateSettings(s)
	return ro.test
}

func releaseNamed(cfg *config.Config, name string) *config.Release {
	for i := range cfg.Releases {
		if cfg.Releases[i].Name == name {
			return &cfg.Releases[i]
		}
	}
	return nil
}

func (a *Runner) record(release string, w *Window) {
	a.mu.Lock()
	a.index[release]++
	w.Index = a.index[release]
	h := append(a.history[release], *w)
	if len(h) > maxWindows {
		h = slices.Clone(h[len(h)-maxWindows:])
	}
	a.history[release] = h
	a.mu.Unlock()

	a.metrics.observe(release, w)
	attrs := []any{"release", release, "window", w.Index, "from", w.From, "to", w.To, "verdict", string(w.Verdict),
		"reason", w.Reason, "action", w.Action, "config_version", w.ConfigVersion, "configured_percent", w.Percent}
	for _, s := range w.Services {
		attrs = append(attrs, "service", s.Service, "gray_requests", s.Gray.Requests, "gray_errors", s.Gray.Errors,
			"stable_requests", s.Stable.Requests, "stable_errors", s.Stable.Errors, "gray_request_share", s.GrayRequestShare)
		for _, t := range s.Tests {
			attrs = append(attrs, t.Metric+"_p", t.P, t.Metric+"_effect", t.Effect)
		}
	}
	if w.ActionError != "" {
		attrs = append(attrs, "action_error", w.ActionError)
	}
	a.log.Info("analysis verdict", attrs...)
	_, span := a.tracer.Start(context.Background(), "graymesh.analysis.window", trace.WithAttributes(
		attribute.String("graymesh.release", release), attribute.Int("graymesh.analysis.window", w.Index)))
	span.AddEvent("verdict", trace.WithAttributes(
		attribute.String("graymesh.analysis.verdict", string(w.Verdict)), attribute.String("graymesh.analysis.reason", w.Reason),
		attribute.String("graymesh.analysis.action", w.Action)))
	span.End()
}

// Status is release's analysis, its last n windows (all when n ≤ 0);
// false when the release is not analysed (or does not exist).
func (a *Runner) Status(release string, n int) (*Status, bool) {
	cfg := a.pipe.Config()
	r := releaseNamed(cfg, release)
	if r == nil || r.Analysis == nil {
		return nil, false
	}
	now := a.pipe.Clock().Now()
	steps := len(a.pipe.FileSchedule(release))
	st := &Status{Release: r.Name, Env: r.Env, Services: cfg.AnalysedServices(r), Settings: r.Analysis, State: r.State,
		Percent: r.PercentAt(now), ScheduleStep: r.StepAt(now), ScheduleSteps: steps}
	if on, _ := a.pipe.FleetMode(); on {
		st.Windows, st.FleetError = a.fleetWindows(release, n)
		return st, true
	}
	a.mu.Lock()
	h := a.history[release]
	if n > 0 && len(h) > n {
		h = h[len(h)-n:]
	}
	st.Windows = append([]Window{}, h...)
	a.mu.Unlock()
	return st, true
}
