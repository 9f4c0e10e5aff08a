package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Analysis is a release's gray-versus-stable analysis: every Interval,
// each service's gray environment is compared with its stable one, and the
// verdict acts on the release. With a schedule, a step is taken only after
// a window passed (and not before the step's at); inconclusive holds.
type Analysis struct {
	// Source is where the observations come from: "envoy" (Envoy streams
	// its access log to graymesh) or "prometheus" (Envoy's cluster stats,
	// scraped from every Envoy of the fleet by a Prometheus server).
	Source string `yaml:"source" json:"source"`
	// PrometheusURL is the Prometheus server source prometheus queries
	// (its HTTP API is under PrometheusURL/api/v1).
	PrometheusURL string `yaml:"prometheus_url" json:"prometheus_url"`
	// PrometheusLabels select the series of this fleet's Envoys (each an
	// equality matcher added to every query, e.g. job: envoy).
	PrometheusLabels map[string]string `yaml:"prometheus_labels" json:"prometheus_labels,omitempty"`
	// Method is how windows are judged: "sequential" (default) tests the
	// rollout so far after each window, holding the chance of ever failing
	// a gray as good as stable at Alpha over the whole rollout; "fixed"
	// judges every window alone, Alpha then being per window.
	Method string `yaml:"method" json:"method"`
	// Interval is the length of one window.
	Interval Duration `yaml:"interval" json:"interval"`
	// MinRequests is the sample gate: a side of a service with fewer
	// requests in a window makes the window inconclusive, never a pass.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// Alpha is the chance that a gray version as good as stable is judged
	// worse: over the whole rollout with the sequential method, per window
	// with the fixed one. It is split over the tests run.
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// Metrics are the tests run: errors, latency.
	Metrics []string `yaml:"metrics" json:"metrics"`
	// Services to compare (default: every service with the release's env).
	Services []string        `yaml:"services" json:"services"`
	Errors   ErrorAnalysis   `yaml:"errors" json:"errors"`
	Latency  LatencyAnalysis `yaml:"latency" json:"latency"`
	// OnFail and OnCritical are the actions taken on those verdicts.
	OnFail     string `yaml:"on_fail" json:"on_fail"`
	OnCritical string `yaml:"on_critical" json:"on_critical"`
}

// ErrorAnalysis compares the share of requests that failed (5xx or reset)
// on gray with stable's.
type ErrorAnalysis struct {
	// Tolerance is how many percentage points gray's error rate may exceed
	// stable's before a significant difference fails (default 1).
	Tolerance *float64 `yaml:"tolerance" json:"tolerance"`
	// Critical, in points, makes a significant difference at least this
	// large critical (default 20; 0 turns it off).
	Critical *float64 `yaml:"critical" json:"critical"`
}

// LatencyAnalysis compares gray's request durations with stable's.
type LatencyAnalysis struct {
	// Tolerance is how much slower gray may be, in percent of stable's
	// median (fixed method) or of stable's same quantile (sequential),
	// before a significant shift fails (default 10).
	Tolerance *float64 `yaml:"tolerance" json:"tolerance"`
	// MinEffect is the smallest shift that can fail, however small
	// stable's median is.
	MinEffect Duration `yaml:"min_effect" json:"min_effect"`
	// Critical makes a significant shift at least this large critical
	// (0: off).
	Critical Duration `yaml:"critical" json:"critical"`
}

// Analysis sources, metrics and actions.
const (
	SourceEnvoy      = "envoy"
	SourcePrometheus = "prometheus"

	MethodSequential = "sequential"
	MethodFixed      = "fixed"

	MetricErrors  = "errors"
	MetricLatency = "latency"

	ActionNone     = "none"
	ActionFreeze   = "freeze"
	ActionRollback = "rollback"
	ActionKill     = "kill"
)

// Analysis defaults.
const (
	DefaultAnalysisInterval    = 30 * time.Second
	DefaultAnalysisMinRequests = 100
	DefaultAnalysisAlpha       = 0.05
	DefaultErrorTolerance      = 1.0
	DefaultErrorCritical       = 20.0
	DefaultLatencyTolerance    = 10.0
	DefaultLatencyMinEffect    = 10 * time.Millisecond
)

// ApplyDefaults fills the fields left empty with their defaults.
func (a *Analysis) ApplyDefaults() {
	if a.Source == "" {
		a.Source = SourceEnvoy
	}
	if a.Method == "" {
		a.Method = MethodSequential
	}
	if a.Interval.Duration == 0 {
		a.Interval.Duration = DefaultAnalysisInterval
	}
	if a.MinRequests == 0 {
		a.MinRequests = DefaultAnalysisMinRequests
	}
	if a.Alpha == 0 {
		a.Alpha = DefaultAnalysisAlpha
	}
	if len(a.Metrics) == 0 {
		a.Metrics = []string{MetricErrors, MetricLatency}
	}
	orDefault := func(p **float64, v float64) {
		if *p == nil {
			*p = &v
		}
	}
	orDefault(&a.Errors.Tolerance, DefaultErrorTolerance)
	orDefault(&a.Errors.Critical, DefaultErrorCritical)
	orDefault(&a.Latency.Tolerance, DefaultLatencyTolerance)
	if a.Latency.MinEffect.Duration == 0 {
		a.Latency.MinEffect.Duration = DefaultLatencyMinEffect
	}
	if a.OnFail == "" {
		a.OnFail = ActionRollback
	}
	if a.OnCritical == "" {
		a.OnCritical = ActionKill
	}
}

// Uses reports whether the analysis runs the named metric.
func (a *Analysis) Uses(metric string) bool { return slices.Contains(a.Metrics, metric) }

// AnalysedServices are the services a release's analysis compares: those
// listed, or every service with the release's environment.
func (c *Config) AnalysedServices(r *Release) []string {
	if r.Analysis == nil {
		return nil
	}
	if len(r.Analysis.Services) > 0 {
		return r.Analysis.Services
	}
	var out []string
	for _, s := range c.Services {
		if len(s.Environments[r.Env]) > 0 {
			out = append(out, s.Name)
		}
	}
	return out
}

// AnalysesFromEnvoy reports whether any release reads its analysis from
// Envoy's access log, which graymesh then asks Envoy to stream.
func (c *Config) AnalysesFromEnvoy() bool {
	for _, r := range c.Releases {
		if r.Analysis != nil && r.Analysis.Source == SourceEnvoy {
			return true
		}
	}
	return false
}

// validate checks the analysis fields of release field (e.g.
// "releases[0] (shop-v2)") against the config it is in.
func (a *Analysis) validate(field string, r *Release, c *Config) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.analysis.%s: %s", field, sub, fmt.Sprintf(format, args...)))
	}
	switch a.Source {
	case SourceEnvoy:
		if a.PrometheusURL != "" {
			add("prometheus_url", "is set but source is %s; set source: prometheus to use it", a.Source)
		}
		if len(a.PrometheusLabels) > 0 {
			add("prometheus_labels", "are set but source is %s; set source: prometheus to use them", a.Source)
		}
	case SourcePrometheus:
		if u, err := url.Parse(a.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("prometheus_url", "%q is not an http(s) URL; source prometheus needs one", a.PrometheusURL)
		}
		for _, name := range slices.Sorted(maps.Keys(a.PrometheusLabels)) {
			if msg := promLabelProblem(name); msg != "" {
				add("prometheus_labels."+name, "%s", msg)
			}
		}
	default:
		add("source", "%q is not one of %s, %s", a.Source, SourceEnvoy, SourcePrometheus)
	}
	if a.Method != MethodSequential && a.Method != MethodFixed {
		add("method", "%q is not one of %s, %s", a.Method, MethodSequential, MethodFixed)
	}
	if d := a.Interval.Duration; d < time.Second || d > 24*time.Hour {
		add("interval", "%s is outside [1s, 24h]", d)
	}
	if a.MinRequests < 10 {
		add("min_requests", "%d is below 10; no test says anything on fewer requests per side", a.MinRequests)
	}
	if math.IsNaN(a.Alpha) || a.Alpha <= 0 || a.Alpha > 0.2 {
		add("alpha", "%v is outside (0, 0.2]", a.Alpha)
	}
	seen := map[string]bool{}
	for i, m := range a.Metrics {
		switch {
		case m != MetricErrors && m != MetricLatency:
			add(fmt.Sprintf("metrics[%d]", i), "%q is not one of %s, %s", m, MetricErrors, MetricLatency)
		case seen[m]:
			add(fmt.Sprintf("metrics[%d]", i), "%q is listed twice", m)
		}
		seen[m] = true
	}
	if tol, crit := a.Errors.Tolerance, a.Errors.Critical; tol != nil && crit != nil {
		if math.IsNaN(*tol) || *tol < 0 || *tol >= 100 {
			add("errors.tolerance", "%v is outside [0, 100) percentage points", *tol)
		} else if math.IsNaN(*crit) || *crit < 0 || *crit > 100 || (*crit > 0 && *crit <= *tol) {
			add("errors.critical", "%v must be 0 (off) or above errors.tolerance (%v) and at most 100 points", *crit, *tol)
		}
	}
	l := a.Latency
	if tol := l.Tolerance; tol != nil && (math.IsNaN(*tol) || *tol < 0 || *tol > 1000) {
		add("latency.tolerance", "%v is outside [0, 1000] percent of stable's median", *tol)
	}
	if d := l.MinEffect.Duration; d < 0 || d > time.Hour {
		add("latency.min_effect", "%s is outside [0, 1h]", d)
	}
	if d := l.Critical.Duration; d < 0 || (d > 0 && d <= l.MinEffect.Duration) {
		add("latency.critical", "%s must be 0 (off) or above latency.min_effect (%s)", d, l.MinEffect.Duration)
	}
	if !slices.Contains([]string{ActionNone, ActionFreeze, ActionRollback, ActionKill}, a.OnFail) {
		add("on_fail", "%q is not one of none, freeze, rollback, kill", a.OnFail)
	}
	if !slices.Contains([]string{ActionFreeze, ActionRollback, ActionKill}, a.OnCritical) {
		add("on_critical", "%q is not one of freeze, rollback, kill", a.OnCritical)
	}
	for _, act := range []struct{ field, action string }{{"on_fail", a.OnFail}, {"on_critical", a.OnCritical}} {
		if act.action == ActionFreeze && !c.Membership.Enabled {
			add(act.field, "freeze keeps only subjects holding a membership token, and membership.enabled is off, so it would send everyone to stable: use rollback or kill, or turn membership on")
		}
	}
	errs = append(errs, a.validateServices(field, r, c)...)
	return errs
}

// promLabelNamePattern is a Prometheus label name.
var promLabelNamePattern = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// promLabelProblem is why name cannot select series in source
// prometheus's queries ("" when it can).
func promLabelProblem(name string) string {
	switch {
	case !promLabelNamePattern.MatchString(name) || strings.HasPrefix(name, "__"):
		return "is not a Prometheus label name (letters, digits and _, not starting with a digit or __)"
	case name == "envoy_cluster_name" || name == "envoy_response_code_class" || name == "le":
		return "is a label graymesh's own queries select on"
	}
	return ""
}

func (a *Analysis) validateServices(field string, r *Release, c *Config) []error {
	var errs []error
	envOf := map[string]bool{}
	known := map[string]bool{}
	for _, s := range c.Services {
		known[s.Name] = true
		envOf[s.Name] = len(s.Environments[r.Env]) > 0
	}
	for i, s := range a.Services {
		switch {
		case !known[s]:
			errs = append(errs, fmt.Errorf("%s.analysis.services[%d]: %q is not a configured service", field, i, s))
		case !envOf[s]:
			errs = append(errs, fmt.Errorf("%s.analysis.services[%d]: service %s has no %q environment to compare with stable", field, i, s, r.Env))
		}
	}
	if len(a.Services) == 0 && len(c.AnalysedServices(r)) == 0 {
		errs = append(errs, fmt.Errorf("%s.analysis: no service has a %q environment, so there is nothing to compare with stable", field, r.Env))
	}
	return errs
}
