package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/xds"
)

// metrics are graymesh's Prometheus series, on the admin server's /metrics.
type metrics struct {
	registry  *prometheus.Registry
	decisions *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	latency   prometheus.Histogram
	reloads   *prometheus.CounterVec
	version   *prometheus.GaugeVec
}

func newMetrics(activeStreams func() int64, x *xds.Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_decisions_total",
			Help: "Decisions made, by hop (edge decides, inner follows the lane), release, environment (\"\" = route default) and reason.",
		}, []string{"hop", "release", "env", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "graymesh_decision_duration_seconds",
			Help:    "Time to decide one request inside graymesh (header extraction, token, rules, lane), excluding gRPC transport.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3},
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_fallbacks_total",
			Help: "Requests served by stable at a hop although their lane names another environment, by service, lane environment and reason.",
		}, []string{"service", "env", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_config_reloads_total",
			Help: "Config reloads, by result (accepted, refused).",
		}, []string{"result"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graymesh_config_info",
			Help: "The config version in force (value is always 1).",
		}, []string{"version"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.fallbacks, m.latency, m.reloads, m.version,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "graymesh_extproc_active_streams",
			Help: "ext_proc streams open now (one per in-flight request).",
		}, func() float64 { return float64(activeStreams()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "graymesh_xds_pushes_total", Help: "xDS responses sent to Envoy.",
		}, func() float64 { return float64(x.Stats.Pushes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "graymesh_xds_acks_total", Help: "xDS responses Envoy accepted.",
		}, func() float64 { return float64(x.Stats.ACKs.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "graymesh_xds_nacks_total", Help: "xDS responses Envoy rejected.",
		}, func() float64 { return float64(x.Stats.NACKs.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "graymesh_xds_restores_total", Help: "Last accepted snapshots put back after Envoy rejected a newer one.",
		}, func() float64 { return float64(x.Stats.Restores.Load()) }),
	)
	for _, r := range []string{"accepted", "refused"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// Decided implements extproc.Observer.
func (m *metrics) Decided(hop, service string, d gray.Decision, took time.Duration) {
	m.decisions.WithLabelValues(hop, d.Release, d.Env, string(d.Reason)).Inc()
	m.latency.Observe(took.Seconds())
	if d.Fallback != "" {
		m.fallbacks.WithLabelValues(service, d.Env, d.Fallback).Inc()
	}
}

func (m *metrics) setVersion(v string) {
	m.version.Reset()
	m.version.WithLabelValues(v).Set(1)
}
