package fleetbench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/graymesh/graymesh/internal/testing/kubeharness"
)

// TestParseAPIServerMetrics reads the API server's counters the way they
// are written: labels in any order, a subresource, other groups' watch
// events left out.
func TestParseAPIServerMetrics(t *testing.T) {
	page := `# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",resource="leases",verb="GET",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",resource="leases",verb="GET",version="v1"} 2
apiserver_request_total{code="200",resource="grayreleases",subresource="status",verb="PATCH"} 3
apiserver_watch_events_total{group="graymesh.io",kind="GrayRelease",version="v1alpha1"} 40
apiserver_watch_events_total{group="",kind="Lease",version="v1"} 99
apiserver_watch_events_sizes_sum{group="graymesh.io",kind="GrayRelease",version="v1alpha1"} 4096
apiserver_watch_events_sizes_count{group="graymesh.io",kind="GrayRelease",version="v1alpha1"} 40
`
	got := requestCounts(page)
	if got["GET leases"] != 12 || got["PATCH grayreleases/status"] != 3 || len(got) != 2 {
		t.Errorf("request counts %v", got)
	}
	if e, b := watchEvents(page); e != 40 || b != 4096 {
		t.Errorf("watch events %v, bytes %v", e, b)
	}
	rs := rates(map[string]float64{"GET leases": 2}, got, 2, 1)
	if len(rs) != 2 || rs[0].Request != "GET leases" || rs[0].PerSec != 5 || rs[1].PerSec != 1.5 {
		t.Errorf("rates %v", rs)
	}
	if q := Quantile([]time.Duration{4, 1, 3, 2}, 0.5); q != 2 {
		t.Errorf("median %v", q)
	}
}

// TestFleetSmoke runs the simulator on 3 nodes of the controller design
// against the real API server: it measures a rest rate, a kill reaching
// every node, the status saying so, the leading controller replaced
// while a change lands (the status version never down), and a restart
// every node recovers from.
func TestFleetSmoke(t *testing.T) {
	if _, err := kubeharness.Find(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: install with %s", err, kubeharness.Install)
		}
		t.Skipf("%v: install with %s", err, kubeharness.Install)
	}
	klog.SetLogger(logr.Discard()) // client-go's leader election logs every attempt
	_, file, _, _ := runtime.Caller(0)
	res, err := Run(context.Background(), Options{
		Nodes: 3, Design: DesignController, Rest: 2 * time.Second, Kills: 1, Timeout: time.Minute, RestartWindow: 10 * time.Second, RampEvery: 300 * time.Millisecond,
		Work: t.TempDir(), CRD: filepath.Join(filepath.Dir(file), "..", "..", "manifests", "crd", "graymesh.io_grayreleases.yaml"), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kill) != 3 || len(res.Status) != 1 || res.ControllerReplicas != 2 {
		t.Errorf("kill times %v, status times %v, %d controllers", res.Kill, res.Status, res.ControllerReplicas)
	}
	if res.EventsPerChange <= 0 || res.RestartCurrent <= 0 || total(res.RestRates) <= 0 {
		t.Errorf("events per change %v, restart %v, rest %v", res.EventsPerChange, res.RestartCurrent, res.RestRates)
	}
	// The ramp's ten spec changes are PATCHes of grayreleases the API
	// server counted.
	var patches float64
	for _, r := range res.RampRates {
		if strings.HasPrefix(r.Request, "PATCH grayreleases") {
			patches += r.PerSec * res.RampSeconds
		}
	}
	if patches < rampSteps {
		t.Errorf("ramp: %v over %.0fs, %.0f PATCHes of grayreleases, want at least %d", res.RampRates, res.RampSeconds, patches, rampSteps)
	}
	if res.FailoverLeader <= 0 || res.FailoverStatus < res.FailoverLeader || res.FailoverRegressions != 0 {
		t.Errorf("failover: leader after %v, status after %v, versions %v (%d down)", res.FailoverLeader, res.FailoverStatus, res.FailoverVersions, res.FailoverRegressions)
	}
	if _, err := Run(context.Background(), Options{Design: "other"}); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("an unknown design ran: %v", err)
	}
}
