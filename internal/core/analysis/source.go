// Package analysis judges a gray release against stable: it collects what
// each side of each service served in a window (requests, failures,
// durations, distinct callers), tests whether gray is worse than stable
// with statistics that hold on small samples, and says so in a report a
// person can read. It decides nothing about routing and imports no gRPC or
// Envoy types: the access-log receiver (analysis/accesslog) feeds it, the
// daemon acts on its verdicts through the release overrides.
package analysis

import (
	"context"
	"errors"
	"time"
)

// Sample is one request a service's environment served, as Envoy logged
// it.
type Sample struct {
	Service, Env string
	// Failed is a 5xx answer, or no answer at all (a reset, a connect
	// failure, a timeout).
	Failed   bool
	Duration time.Duration
	// Caller is a keyed hash of who called ("" when unknown: anonymous, or
	// a hop that does not decide).
	Caller string
	// Route is the request's route group (RouteGroup of its path; "" when
	// unknown).
	Route string
}

// Query asks for one release's window.
type Query struct {
	Release  string
	Env      string
	Services []string
	From, To time.Time
}

// Side is what one environment of one service served in a window.
type Side struct {
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// Latencies are the durations (milliseconds) of successful requests:
	// all of them, or a uniform sample of MaxLatencySamples.
	Latencies []float64 `json:"-"`
	// Callers counts distinct callers ("≥" when CallersCapped).
	Callers       int  `json:"callers"`
	CallersCapped bool `json:"callers_capped,omitempty"`
}

// Observation is one service's gray and stable sides in a window.
type Observation struct {
	Service      string
	Gray, Stable Side
	// Callers counts distinct callers served by either side.
	Callers int
}

// Observations are every analysed service's, for one window.
type Observations struct {
	From, To time.Time
	Services []Observation
}

// Source gives the observations of a release's windows: the embedded
// Collector (Envoy's access log streamed to graymesh) or Prometheus
// (fleet mode).
type Source interface {
	// Collect returns what each service of q served on q.Env and on stable
	// between q.From and q.To. An error makes the window inconclusive.
	Collect(ctx context.Context, q Query) (*Observations, error)
}

// ErrNoSource is the error of a source that cannot answer at all.
var ErrNoSource = errors.New("analysis source unavailable")

// EvidenceSource gives a release's windows as mergeable Evidence, what the
// sequential test runs on.
type EvidenceSource interface {
	// CollectEvidence returns what each service of q served on q.Env and
	// on stable between q.From and q.To. An error makes the window
	// inconclusive.
	CollectEvidence(ctx context.Context, q Query) (*Evidence, error)
}
