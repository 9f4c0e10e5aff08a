package config

import (
	"strings"
	"testing"
	"time"
)

// withAnalysis is the valid config with an analysis section on shop-v2.
func withAnalysis(section string) string {
	return strings.Replace(valid, "    percent: 12.5\n", "    percent: 12.5\n    analysis:\n"+section, 1)
}

func TestAnalysisDefaults(t *testing.T) {
	cfg, err := Parse([]byte(withAnalysis("      interval: 10s\n")), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Releases[0].Analysis
	if a.Source != SourceEnvoy || a.Method != MethodSequential || a.Interval.Duration != 10*time.Second || a.MinRequests != 100 || a.Alpha != 0.05 ||
		!a.Uses(MetricErrors) || !a.Uses(MetricLatency) || *a.Errors.Tolerance != 1 || *a.Errors.Critical != 20 ||
		*a.Latency.Tolerance != 10 || a.Latency.MinEffect.Duration != 10*time.Millisecond || a.Latency.Critical.Duration != 0 ||
		a.OnFail != ActionRollback || a.OnCritical != ActionKill {
		t.Fatalf("defaults %+v", a)
	}
	if got := cfg.AnalysedServices(&cfg.Releases[0]); len(got) != 1 || got[0] != "shop" {
		t.Fatalf("services %v", got)
	}
	if !cfg.AnalysesFromEnvoy() {
		t.Fatal("an envoy-sourced analysis does not ask Envoy for its access log")
	}
	// An explicit 0 is kept: any significant increase fails, and no
	// level is critical.
	cfg, err = Parse([]byte(withAnalysis("      errors: {tolerance: 0, critical: 0}\n")), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.Releases[0].Analysis.Errors; *e.Tolerance != 0 || *e.Critical != 0 {
		t.Fatalf("explicit zeros became %v %v", *e.Tolerance, *e.Critical)
	}
	cfg, err = Parse([]byte(withAnalysis("      method: fixed\n")), "a.yaml")
	if err != nil || cfg.Releases[0].Analysis.Method != MethodFixed {
		t.Fatalf("method fixed: %v", err)
	}
}

// TestAnalysisRefusedNamingReleaseAndField: every bad analysis field is
// refused, the error naming the release and the field.
func TestAnalysisRefusedNamingReleaseAndField(t *testing.T) {
	tests := []struct {
		name, section, want string
	}{
		{"unknown source", "      source: datadog\n", `releases[0] (shop-v2).analysis.source: "datadog" is not one of envoy, prometheus`},
		{"prometheus without url", "      source: prometheus\n", `releases[0] (shop-v2).analysis.prometheus_url: "" is not an http(s) URL`},
		{"prometheus label name", "      source: prometheus\n      prometheus_url: http://prom:9090\n      prometheus_labels: {1job: envoy}\n", `releases[0] (shop-v2).analysis.prometheus_labels.1job: is not a Prometheus label name`},
		{"prometheus label of graymesh", "      source: prometheus\n      prometheus_url: http://prom:9090\n      prometheus_labels: {le: \"1\"}\n", `releases[0] (shop-v2).analysis.prometheus_labels.le: is a label graymesh's own queries select on`},
		{"labels without prometheus", "      prometheus_labels: {job: envoy}\n", `releases[0] (shop-v2).analysis.prometheus_labels: are set but source is envoy`},
		{"method", "      method: bayesian\n", `releases[0] (shop-v2).analysis.method: "bayesian" is not one of sequential, fixed`},
		{"url without prometheus", "      prometheus_url: http://prom:9090\n", `releases[0] (shop-v2).analysis.prometheus_url: is set but source is envoy`},
		{"interval too short", "      interval: 100ms\n", `releases[0] (shop-v2).analysis.interval: 100ms is outside [1s, 24h]`},
		{"tiny sample gate", "      min_requests: 3\n", `releases[0] (shop-v2).analysis.min_requests: 3 is below 10`},
		{"alpha", "      alpha: 0.5\n", `releases[0] (shop-v2).analysis.alpha: 0.5 is outside (0, 0.2]`},
		{"metric", "      metrics: [errors, cpu]\n", `releases[0] (shop-v2).analysis.metrics[1]: "cpu" is not one of errors, latency`},
		{"metric twice", "      metrics: [errors, errors]\n", `releases[0] (shop-v2).analysis.metrics[1]: "errors" is listed twice`},
		{"negative tolerance", "      errors: {tolerance: -1}\n", `releases[0] (shop-v2).analysis.errors.tolerance: -1 is outside [0, 100)`},
		{"critical under tolerance", "      errors: {tolerance: 5, critical: 2}\n", `releases[0] (shop-v2).analysis.errors.critical: 2 must be 0 (off) or above errors.tolerance (5)`},
		{"latency tolerance", "      latency: {tolerance: 5000}\n", `releases[0] (shop-v2).analysis.latency.tolerance: 5000 is outside [0, 1000]`},
		{"latency critical under min_effect", "      latency: {min_effect: 50ms, critical: 20ms}\n", `releases[0] (shop-v2).analysis.latency.critical: 20ms must be 0 (off) or above latency.min_effect (50ms)`},
		{"on_fail", "      on_fail: page-someone\n", `releases[0] (shop-v2).analysis.on_fail: "page-someone" is not one of none, freeze, rollback, kill`},
		{"on_critical none", "      on_critical: none\n", `releases[0] (shop-v2).analysis.on_critical: "none" is not one of freeze, rollback, kill`},
		{"freeze without membership", "      on_fail: freeze\n", `releases[0] (shop-v2).analysis.on_fail: freeze keeps only subjects holding a membership token`},
		{"unknown service", "      services: [cart]\n", `releases[0] (shop-v2).analysis.services[0]: "cart" is not a configured service`},
		{"unknown field", "      windows: 3\n", `releases[0] (shop-v2).analysis.windows: unknown field; known fields here: alpha,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(withAnalysis(tt.section)), "a.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %q", err, tt.want)
			}
		})
	}
}

// TestAnalysisFromPrometheus: source prometheus is accepted with its URL
// and labels, and does not ask Envoy for its access log.
func TestAnalysisFromPrometheus(t *testing.T) {
	cfg, err := Parse([]byte(withAnalysis("      source: prometheus\n      prometheus_url: http://prom:9090\n      prometheus_labels: {job: envoy}\n")), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Releases[0].Analysis
	if a.Source != SourcePrometheus || a.PrometheusURL != "http://prom:9090" || a.PrometheusLabels["job"] != "envoy" {
		t.Fatalf("analysis %+v", a)
	}
	if cfg.AnalysesFromEnvoy() {
		t.Fatal("a prometheus-sourced analysis asks Envoy for its access log")
	}
	c, err := cfg.Clone()
	if err != nil || c.Releases[0].Analysis.PrometheusLabels["job"] != "envoy" {
		t.Fatalf("clone lost the labels: %v", err)
	}
}

func TestAnalysisNeedsAServiceWithTheEnv(t *testing.T) {
	cfg := strings.Replace(withAnalysis("      interval: 10s\n"), "    env: gray\n", "    env: canary\n", 1)
	_, err := Parse([]byte(cfg), "a.yaml")
	if err == nil || !strings.Contains(err.Error(), `releases[0] (shop-v2).analysis: no service has a "canary" environment`) {
		t.Fatalf("error %v", err)
	}
}
