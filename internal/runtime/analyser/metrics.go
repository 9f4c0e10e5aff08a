package analyser

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/core/analysis"
)

// metrics are the analysis series on /metrics.
type metrics struct {
	verdicts   *prometheus.CounterVec
	pValue     *prometheus.GaugeVec
	effect     *prometheus.GaugeVec
	share      *prometheus.GaugeVec
	configured *prometheus.GaugeVec
	// nodes is the fleet analyser's only: nodes merged and reporting.
	nodes *prometheus.GaugeVec
}

// Prefixes of the two analyses' series: a node's own analysis (file
// mode), and the fleet's one analyser (Kubernetes mode), which may share a
// registry with a node's (--kube-role=all).
const (
	nodePrefix  = "graymesh_analysis"
	fleetPrefix = "graymesh_fleet_analysis"
)

// newFleetMetrics are the fleet analyser's series: the node analysis's,
// under fleetPrefix, and how many nodes each window merged.
func newFleetMetrics(reg prometheus.Registerer) *metrics {
	m := newMetrics(reg, fleetPrefix)
	m.nodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: fleetPrefix + "_nodes",
		Help: "Nodes in the last window of a release: merged (their evidence judged) and reporting (publishing evidence of the release at all).",
	}, []string{"release", "kind"})
	reg.MustRegister(m.nodes)
	return m
}

func newMetrics(reg prometheus.Registerer, prefix string) *metrics {
	m := &metrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_verdicts_total",
			Help: "Analysis windows judged, by release and verdict (pass, inconclusive, fail, critical).",
		}, []string{"release", "verdict"}),
		pValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prefix + "_p_value",
			Help: "The last window's p-value, by release, service and metric (errors, latency).",
		}, []string{"release", "service", "metric"}),
		effect: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prefix + "_effect",
			Help: "The last window's effect, gray minus stable: error rate in percentage points, latency shift (Hodges–Lehmann) in milliseconds.",
		}, []string{"release", "service", "metric"}),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prefix + "_gray_share_percent",
			Help: "The last window's share served by gray, in percent, of a service's requests or distinct callers (kind).",
		}, []string{"release", "service", "kind"}),
		configured: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prefix + "_configured_percent",
			Help: "The percentage the release was configured to admit during its last window.",
		}, []string{"release"}),
	}
	reg.MustRegister(m.verdicts, m.pValue, m.effect, m.share, m.configured)
	return m
}

func (m *metrics) observe(release string, w *Window) {
	if m == nil {
		return
	}
	if m.nodes != nil {
		m.nodes.WithLabelValues(release, "merged").Set(float64(w.Nodes))
		m.nodes.WithLabelValues(release, "reporting").Set(float64(w.NodesReporting))
	}
	m.verdicts.WithLabelValues(release, string(w.Verdict)).Inc()
	m.configured.WithLabelValues(release).Set(w.Percent)
	for _, s := range w.Services {
		if s.Gray.Requests+s.Stable.Requests > 0 {
			m.share.WithLabelValues(release, s.Service, "requests").Set(s.GrayRequestShare)
		}
		if s.GrayCallerShare != nil {
			m.share.WithLabelValues(release, s.Service, "callers").Set(*s.GrayCallerShare)
		}
		for _, t := range s.Tests {
			// Route groups' tests stay in the window's record: as labels
			// they would multiply the series.
			if t.Verdict == analysis.Inconclusive || t.Route != "" {
				continue
			}
			m.pValue.WithLabelValues(release, s.Service, metricLabel(t)).Set(t.P)
			m.effect.WithLabelValues(release, s.Service, metricLabel(t)).Set(t.Effect)
		}
	}
}

// metricLabel is a test's metric label: "errors", "latency" (the median),
// or "latency_p90" and "latency_p99" for the sequential tail tests.
func metricLabel(t analysis.TestResult) string {
	if t.Quantile > 0 && t.Quantile != 0.5 {
		return fmt.Sprintf("%s_p%g", t.Metric, 100*t.Quantile)
	}
	return t.Metric
}
