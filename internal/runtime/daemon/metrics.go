package daemon

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/xds"
)

// metrics are graymesh's Prometheus series, on the admin server's /metrics.
type metrics struct {
	registry  *prometheus.Registry
	decisions *prometheus.CounterVec
	// stress counts stress-test requests apart from decisions, so that
	// shadow load never moves the observed share; stressIgnored counts
	// markers that did not verify (those requests are decided as if
	// unmarked, and counted in decisions).
	stress, stressIgnored *prometheus.CounterVec
	fallbacks             *prometheus.CounterVec
	latency               prometheus.Histogram
}

func newMetrics(activeStreams func() int64, x *xds.Server, sources *identity.Sources) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_decisions_total",
			Help: "Decisions made, by hop (edge decides, inner follows the lane), release, environment (\"\" = route default) and reason.",
		}, []string{"hop", "release", "env", "reason"}),
		stress: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_stress_requests_total",
			Help: "Stress-test (shadow) requests, by hop, release, environment and reason (stress, killed, lane); not in graymesh_decisions_total.",
		}, []string{"hop", "release", "env", "reason"}),
		stressIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_stress_markers_ignored_total",
			Help: "Stress markers ignored at the edge, by problem (malformed, bad-signature, expired, unknown-key, no-lane-key, unknown-release); the request was decided as unmarked.",
		}, []string{"problem"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "graymesh_decision_duration_seconds",
			Help:    "Time to decide one request inside graymesh (header extraction, token, rules, lane), excluding gRPC transport.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3},
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_fallbacks_total",
			Help: "Requests served by stable at a hop although their lane names another environment, by service, lane environment and reason.",
		}, []string{"service", "env", "reason"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.stress, m.stressIgnored, m.fallbacks, m.latency, keySetCollector{sources},
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
	return m
}

// Decided implements extproc.Observer.
func (m *metrics) Decided(hop, service string, o gray.Outcome, took time.Duration) {
	d := &o.Decision
	counter := m.decisions
	if o.Stress {
		counter = m.stress
	}
	counter.WithLabelValues(hop, d.Release, d.Env, string(d.Reason)).Inc()
	if o.StressProblem != "" {
		m.stressIgnored.WithLabelValues(o.StressProblem).Inc()
	}
	m.latency.Observe(took.Seconds())
	if d.Fallback != "" {
		m.fallbacks.WithLabelValues(service, d.Env, d.Fallback).Inc()
	}
}

// keySetCollector reports the issuers' fetched key sets, labelled by
// source (the configured jwks_uri or discovery URL) and the algorithms
// its keys may have ("" for any): both bounded by the config.
type keySetCollector struct{ sources *identity.Sources }

var (
	keySetAge = prometheus.NewDesc("graymesh_identity_keyset_age_seconds",
		"Age of the key set in force, by source (absent until one was fetched).", []string{"source", "algorithms"}, nil)
	keySetKeys = prometheus.NewDesc("graymesh_identity_keyset_keys",
		"Verification keys in the key set in force, by source (0 until one was fetched).", []string{"source", "algorithms"}, nil)
	keySetFetches = prometheus.NewDesc("graymesh_identity_jwks_fetches_total",
		"Key sets fetched and accepted, by source.", []string{"source", "algorithms"}, nil)
	keySetErrors = prometheus.NewDesc("graymesh_identity_jwks_fetch_errors_total",
		"Key set fetches that failed or were refused (the set in force stays), by source.", []string{"source", "algorithms"}, nil)
	keySetUnknownKid = prometheus.NewDesc("graymesh_identity_jwks_unknown_kid_refreshes_total",
		"Fetches made because a token named a kid the set lacked (a rotation, or junk), by source.", []string{"source", "algorithms"}, nil)
)

func (keySetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{keySetAge, keySetKeys, keySetFetches, keySetErrors, keySetUnknownKid} {
		ch <- d
	}
}

func (c keySetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.sources.Status() {
		algs := strings.Join(st.Algorithms, ",")
		if !st.Fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(keySetAge, prometheus.GaugeValue, time.Since(st.Fetched).Seconds(), st.Source, algs)
		}
		ch <- prometheus.MustNewConstMetric(keySetKeys, prometheus.GaugeValue, float64(len(st.Keys)), st.Source, algs)
		ch <- prometheus.MustNewConstMetric(keySetFetches, prometheus.CounterValue, float64(st.Fetches), st.Source, algs)
		ch <- prometheus.MustNewConstMetric(keySetErrors, prometheus.CounterValue, float64(st.Errors), st.Source, algs)
		ch <- prometheus.MustNewConstMetric(keySetUnknownKid, prometheus.CounterValue, float64(st.UnknownKidRefreshes), st.Source, algs)
	}
}
