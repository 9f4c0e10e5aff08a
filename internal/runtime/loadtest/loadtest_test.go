package loadtest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

const testMarker = "stress-token-1"

// edge stands in for a gray-release edge: it counts the requests with
// and without the marker and answers with status's code.
type edge struct {
	marked, unmarked atomic.Int64
	// wrong counts requests whose marker is not testMarker or that lack
	// the extra header the tests send on both sides.
	wrong atomic.Int64
}

// newEdge serves status(marked, n), n counting that kind of request from
// 1; a marked request's response says it was served by "gray".
func newEdge(t *testing.T, status func(marked bool, n int64) int) (*edge, string) {
	t.Helper()
	e := &edge{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		marker := r.Header.Get(wire.HeaderStressMarker)
		if r.Header.Get("X-Test") != "both" || (marker != "" && marker != testMarker) {
			e.wrong.Add(1)
		}
		if marker == "" {
			w.WriteHeader(status(false, e.unmarked.Add(1)))
			return
		}
		w.Header().Set(wire.HeaderEnv, "gray")
		w.WriteHeader(status(true, e.marked.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return e, srv.URL + "/checkout"
}

// options are small, short runs against target.
func options(target string) Options {
	return Options{
		Target:   target,
		Marker:   testMarker,
		Rate:     40,
		Duration: time.Second,
		Headers:  map[string]string{"X-Test": "both"},
	}
}

func ok(bool, int64) int { return http.StatusOK }

func TestMarkerIsSentOnShadowRequestsOnly(t *testing.T) {
	e, target := newEdge(t, ok)
	o := options(target)
	o.BaselineRate = 20
	var progress bytes.Buffer
	o.Progress = &progress
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// The edge saw exactly what the report counts on each side: a marked
	// baseline request would be counted as shadow by the edge.
	if got := e.marked.Load(); got != int64(r.Shadow.Requests) {
		t.Errorf("edge saw %d marked requests, report has %d shadow requests", got, r.Shadow.Requests)
	}
	if got := e.unmarked.Load(); got != int64(r.Baseline.Requests) {
		t.Errorf("edge saw %d unmarked requests, report has %d baseline requests", got, r.Baseline.Requests)
	}
	if e.wrong.Load() != 0 {
		t.Errorf("%d requests had a wrong marker or lacked the extra header", e.wrong.Load())
	}
	// 40/s and 20/s for 1 s, with room for a loaded machine falling behind.
	if r.Shadow.Requests < 10 || r.Shadow.Requests > 40 {
		t.Errorf("shadow requests = %d, want 10..40", r.Shadow.Requests)
	}
	if r.Baseline.Requests < 5 || r.Baseline.Requests > 20 {
		t.Errorf("baseline requests = %d, want 5..20", r.Baseline.Requests)
	}
	if r.Shadow.Envs["gray"] != r.Shadow.Requests || r.Baseline.Envs[""] != r.Baseline.Requests {
		t.Errorf("envs: shadow %v, baseline %v", r.Shadow.Envs, r.Baseline.Envs)
	}
	if r.Aborted || r.FirstFailure != "" || r.Shadow.Errors != 0 || r.Baseline.Errors != 0 {
		t.Errorf("a healthy edge: %+v", r)
	}
	if p := progress.String(); !strings.HasPrefix(p, "\r[") || !strings.HasSuffix(p, "\n") || !strings.Contains(p, "errors 0/") {
		t.Errorf("progress = %q", p)
	}
}

func TestShadowFailuresAbortTheRun(t *testing.T) {
	// Every second marked request fails.
	_, target := newEdge(t, func(marked bool, n int64) int {
		if marked && n%2 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	o := options(target)
	o.Rate, o.Duration, o.BaselineRate, o.AbortErrorRate = 50, 3*time.Second, 10, 0.2
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Aborted {
		t.Fatalf("not aborted: %+v", r)
	}
	if !strings.HasPrefix(r.AbortReason, "shadow error rate ") || !strings.HasSuffix(r.AbortReason, "> limit 20.0%") {
		t.Errorf("AbortReason = %q", r.AbortReason)
	}
	if !strings.HasPrefix(r.FirstFailure, "status 500 Internal Server Error at +") {
		t.Errorf("FirstFailure = %q", r.FirstFailure)
	}
	if r.Shadow.Requests < DefaultAbortMinRequests || r.Shadow.Errors == 0 || r.Baseline.Errors != 0 {
		t.Errorf("shadow %d requests, %d errors; baseline %d errors", r.Shadow.Requests, r.Shadow.Errors, r.Baseline.Errors)
	}
}

func TestBaselineFailuresDoNotAbort(t *testing.T) {
	_, target := newEdge(t, func(marked bool, _ int64) int {
		if marked {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	o := options(target)
	o.Rate, o.BaselineRate, o.AbortErrorRate, o.AbortMinRequests = 30, 30, 0.2, 5
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Aborted || r.AbortReason != "" || r.FirstFailure != "" {
		t.Errorf("aborted on the baseline's failures: %q, first failure %q", r.AbortReason, r.FirstFailure)
	}
	if r.Baseline.Requests == 0 || r.Baseline.Errors != r.Baseline.Requests || r.Baseline.ErrorRate != 1 {
		t.Errorf("baseline: %+v", r.Baseline)
	}
	if r.Shadow.Requests == 0 || r.Shadow.Errors != 0 {
		t.Errorf("shadow: %+v", r.Shadow)
	}
}

func TestCancelReturnsThePartialReport(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, target := newEdge(t, func(marked bool, n int64) int {
		if marked && n == 5 {
			cancel()
		}
		return http.StatusOK
	})
	o := options(target)
	o.Rate, o.Duration = 50, 3*time.Second
	r, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The requests cancelled with the run are not counted as the edge's
	// errors.
	if r == nil || r.Shadow.Requests < 4 || r.Shadow.Requests >= 150 || r.Shadow.Errors != 0 {
		t.Fatalf("partial report: %+v", r)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"remote host", func(o *Options) { o.Target = "http://example.com/checkout" }, "set AllowRemote"},
		{"remote address", func(o *Options) { o.Target = "http://192.0.2.1:10000/" }, "192.0.2.1 is not a loopback address"},
		{"not http", func(o *Options) { o.Target = "ftp://127.0.0.1/" }, "Target"},
		{"no rate", func(o *Options) { o.Rate = 0 }, "Rate must be > 0"},
		{"rate above the cap", func(o *Options) { o.Rate = 2001 }, "Rate 2001/s is above MaxRate 2000/s"},
		{"rate above a raised cap", func(o *Options) { o.Rate, o.MaxRate = 5001, 5000 }, "above MaxRate 5000/s"},
		{"baseline above the cap", func(o *Options) { o.BaselineRate = 3000 }, "BaselineRate 3000/s is above MaxRate"},
		{"negative baseline", func(o *Options) { o.BaselineRate = -1 }, "BaselineRate must not be negative"},
		{"no duration", func(o *Options) { o.Duration = 0 }, "Duration must be > 0 and at most 1h0m0s"},
		{"too long", func(o *Options) { o.Duration = MaxDuration + time.Second }, "Duration must be > 0 and at most"},
		{"ramp past the end", func(o *Options) { o.RampUp = 2 * time.Second }, "RampUp must be between 0 and Duration"},
		{"abort rate above 1", func(o *Options) { o.AbortErrorRate = 1.5 }, "AbortErrorRate must be between 0 and 1"},
		{"no marker", func(o *Options) { o.Marker = "" }, "Marker is empty"},
		{"marker with a newline", func(o *Options) { o.Marker = "a\nb" }, "MarkerHeader/Marker"},
		{"marker on the baseline", func(o *Options) { o.Headers = map[string]string{"X-Graymesh-Stress": "x"} }, "Headers has the marker header"},
		{"bad header name", func(o *Options) { o.Headers = map[string]string{"a b": "x"} }, `Headers: "a b" is not a valid header name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options("http://127.0.0.1:1/")
			tc.change(&o)
			r, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			if r != nil {
				t.Errorf("a refused run has a report: %+v", r)
			}
		})
	}
}

func TestLoopbackTargetsAndAllowRemote(t *testing.T) {
	for _, target := range []string{"http://127.0.0.1:10000/", "http://127.3.2.1/", "http://[::1]:10000/x", "https://LOCALHOST/"} {
		o := options(target).withDefaults()
		if err := o.validate(); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	o := options("https://edge.example.com/").withDefaults()
	o.AllowRemote = true
	if err := o.validate(); err != nil {
		t.Errorf("AllowRemote: %v", err)
	}
}
