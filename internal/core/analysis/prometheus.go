package analysis

import (
	"context"
	"fmt"
)

// Prometheus is the fleet-mode Source: the same windows read from the
// Envoy metrics every sidecar exports to a Prometheus the platform already
// runs, instead of one node's access log. It is not built yet (see
// docs/analysis.md, "Fleet mode"): Collect always fails, and a window
// whose source fails is inconclusive — it never passes, so a release
// configured this way holds its schedule and is never advanced.
//
// TODO(fleet): query, per analysed service and side, over [From, To):
//
//	requests: sum(increase(envoy_cluster_upstream_rq_completed{envoy_cluster_name="SVC|ENV"}[W]))
//	errors:   sum(increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name="SVC|ENV",envoy_response_code_class="5"}[W]))
//	          + sum(increase(envoy_cluster_upstream_rq_timeout / _cx_connect_fail / _rq_pending_failure_eject …))
//	latency:  sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="SVC|ENV"}[W]))
//
// and turn the histogram into tied samples at bucket bounds for the U
// test; distinct callers are not in Envoy's metrics (only the request
// share is reported). Acting stays with one elected graymesh (a
// Kubernetes Lease), which changes the release through the config source
// every node reads, so two nodes never act twice.
type Prometheus struct {
	URL string
}

var _ Source = Prometheus{}

// Collect implements Source; it is not built yet.
func (p Prometheus) Collect(context.Context, Query) (*Observations, error) {
	return nil, fmt.Errorf("%w: the prometheus source (%s) is not built yet; windows stay inconclusive", ErrNoSource, p.URL)
}
