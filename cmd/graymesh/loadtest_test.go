package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// TestFactorReadsTheEdgesDecisions: --factor's rate is the edge's
// decisions counted between two reads of /metrics — inner hops' and
// stress requests are not callers of the edge.
func TestFactorReadsTheEdgesDecisions(t *testing.T) {
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := 100 * reads.Add(1)
		fmt.Fprintf(w, "# TYPE graymesh_decisions_total counter\n"+
			"graymesh_decisions_total{env=\"gray\",hop=\"edge\",reason=\"percent\",release=\"r\"} %d\n"+
			"graymesh_decisions_total{env=\"stable\",hop=\"edge\",reason=\"not-selected\",release=\"r\"} %d\n"+
			"graymesh_decisions_total{env=\"gray\",hop=\"inner\",reason=\"lane\",release=\"r\"} 99999\n"+
			"# TYPE graymesh_stress_requests_total counter\n"+
			"graymesh_stress_requests_total{env=\"gray\",hop=\"edge\",reason=\"stress\",release=\"r\"} 77777\n", n, 2*n)
	}))
	defer srv.Close()
	c, err := admin.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := edgeDecisions(context.Background(), c)
	if err != nil || first != 300 {
		t.Fatalf("first read %g, %v; want 300 (edge only)", first, err)
	}
	rate, err := observeEdgeRate(context.Background(), c, 50*time.Millisecond)
	if err != nil || rate <= 0 {
		t.Fatalf("rate %g, %v", rate, err)
	}
	if _, err := observeEdgeRate(context.Background(), c, time.Hour); err == nil {
		t.Fatal("an --observe of an hour was taken")
	}
}

// TestLoadtestRefusesWithoutARate: --rate or --factor, one of them.
func TestLoadtestRefusesWithoutARate(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"loadtest", "--release", "r", "--target", "http://127.0.0.1:1/"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "one of --rate or --factor") {
		t.Fatalf("stderr: %s", errOut.String())
	}
}
