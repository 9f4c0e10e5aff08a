package loadtest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

func TestRampPacerSchedule(t *testing.T) {
	p := rampPacer{ctx: context.Background(), rate: 10, rampUp: 2 * time.Second, duration: 5 * time.Second}
	// The ramp holds rate·rampUp/2 = 10 hits: the 10th at its end, the
	// 11th one interval at full rate later.
	for n, want := range map[uint64]time.Duration{10: 2 * time.Second, 11: 2100 * time.Millisecond, 40: 5 * time.Second} {
		if got := p.due(n).Round(time.Millisecond); got != want {
			t.Errorf("due(%d) = %s, want %s", n, got, want)
		}
	}
	if got := p.Rate(time.Second); got != 5 {
		t.Errorf("Rate half-way up the ramp = %g, want 5", got)
	}
	if got := p.Rate(3 * time.Second); got != 10 {
		t.Errorf("Rate after the ramp = %g, want 10", got)
	}
	// Without a ramp, the rate from the start.
	flat := rampPacer{ctx: context.Background(), rate: 4, duration: time.Second}
	if got := flat.due(3); got != 750*time.Millisecond {
		t.Errorf("due(3) at 4/s = %s, want 750ms", got)
	}
}

func TestRampPacerSendsAllItSchedulesWithinTheRun(t *testing.T) {
	p := rampPacer{ctx: context.Background(), rate: 50, rampUp: time.Second, duration: 3 * time.Second}
	// 25 hits in the ramp, 100 in the 2 s after it.
	n := uint64(0)
	for ; n < 1000 && p.due(n+1) <= p.duration; n++ {
	}
	if n != 125 {
		t.Errorf("%d hits scheduled, want 125", n)
	}
}

func TestRampPacerStops(t *testing.T) {
	p := rampPacer{ctx: context.Background(), rate: 10, duration: time.Second}
	if _, stop := p.Pace(0, 10); !stop {
		t.Error("the 11th hit at 10/s is past a 1 s run, and the pacer goes on")
	}
	if wait, stop := p.Pace(time.Second, 3); wait != 0 || stop {
		t.Errorf("behind schedule: Pace = %s, %v; want 0, false", wait, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.ctx = ctx
	if _, stop := p.Pace(0, 0); !stop {
		t.Error("a cancelled run's pacer goes on")
	}
}

func TestErrorWindowKeepsTheLastSpan(t *testing.T) {
	w := errorWindow{span: 5 * time.Second}
	t0 := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	w.add(t0, true)
	w.add(t0.Add(time.Second), false)
	w.add(t0.Add(5*time.Second), true)
	if len(w.outcomes) != 3 || w.failed != 2 {
		t.Fatalf("within the span: %d outcomes, %d failed; want 3, 2", len(w.outcomes), w.failed)
	}
	w.add(t0.Add(6500*time.Millisecond), false)
	if len(w.outcomes) != 2 || w.failed != 1 {
		t.Errorf("after 6.5 s: %d outcomes, %d failed; want 2, 1", len(w.outcomes), w.failed)
	}
}

func TestAbortReason(t *testing.T) {
	want := "shadow error rate 31.0% over the last 5s (62 of 200) > limit 20.0%"
	if got := abortReason(62, 200, 5*time.Second, 0.2, 20); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tc := range []struct {
		failed, total int
		limit         float64
	}{
		{40, 200, 0.2},  // at the limit
		{19, 19, 0.2},   // too few requests
		{200, 200, 0},   // no limit
		{0, 0, 0.2},     // nothing yet
		{21, 100, 0.21}, // at the limit
	} {
		if got := abortReason(tc.failed, tc.total, 5*time.Second, tc.limit, 20); got != "" {
			t.Errorf("%d of %d, limit %g: aborts: %q", tc.failed, tc.total, tc.limit, got)
		}
	}
}

func TestTallyCountsErrorsAndEnvs(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	gray := http.Header{}
	gray.Set(wire.HeaderEnv, "gray")
	var s tally
	for _, res := range []*vegeta.Result{
		{Code: 200, Timestamp: t0.Add(100 * time.Millisecond), Latency: time.Millisecond, Headers: gray},
		{Code: 404, Timestamp: t0.Add(200 * time.Millisecond), Latency: time.Millisecond, Error: "404 Not Found", Headers: http.Header{}},
		{Code: 503, Timestamp: t0.Add(900 * time.Millisecond), Latency: time.Millisecond, Error: "503 Service Unavailable", Headers: gray},
		{Code: 0, Timestamp: t0.Add(1200 * time.Millisecond), Latency: 3 * time.Second, Error: "dial tcp 127.0.0.1:1: connection refused"},
	} {
		s.add(res)
	}
	side := s.side()
	if side.Requests != 4 || side.Errors != 2 || side.ErrorRate != 0.5 || side.Max != 3*time.Second {
		t.Errorf("side = %+v", side)
	}
	if len(side.Envs) != 2 || side.Envs["gray"] != 2 || side.Envs[""] != 1 {
		t.Errorf("envs = %v, want gray 2 and 1 without the header (no response, not counted)", side.Envs)
	}
	if got, want := s.firstFailure(t0), "status 503 Service Unavailable at +900ms"; got != want {
		t.Errorf("first failure = %q, want %q", got, want)
	}
	var refused tally
	refused.add(&vegeta.Result{Timestamp: t0.Add(1500 * time.Millisecond), Error: "dial tcp 127.0.0.1:1: connection refused"})
	if got, want := refused.firstFailure(t0), "transport error: dial tcp 127.0.0.1:1: connection refused at +1.5s"; got != want {
		t.Errorf("first failure = %q, want %q", got, want)
	}
}

func TestReportWrite(t *testing.T) {
	r := &Report{
		Shadow: Side{Requests: 1200, Errors: 37, ErrorRate: 37.0 / 1200,
			P50: 12345 * time.Microsecond, P90: 20040 * time.Microsecond, P99: 456789 * time.Microsecond, Max: 1234567 * time.Microsecond,
			Envs: map[string]int{"gray": 1180, "": 20}},
		Baseline: Side{Requests: 600,
			P50: 11900 * time.Microsecond, P90: 18 * time.Millisecond, P99: 30 * time.Millisecond, Max: 45 * time.Millisecond,
			Envs: map[string]int{"stable": 600}},
		Started:      time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC),
		Elapsed:      30040 * time.Millisecond,
		Duration:     time.Minute,
		Aborted:      true,
		AbortReason:  "shadow error rate 31.0% over the last 5s (62 of 200) > limit 20.0%",
		FirstFailure: "status 500 Internal Server Error at +1.2s",
	}
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	want := `load test from 2025-01-02T15:04:05Z: ran 30s of 1m0s
          requests  errors     p50     p90   p99      max
shadow    1200      3.1% (37)  12.3ms  20ms  456.8ms  1.23s
baseline  600       0.0% (0)   11.9ms  18ms  30ms     45ms
envs: shadow (none) 20, gray 1180; baseline stable 600
ABORTED: shadow error rate 31.0% over the last 5s (62 of 200) > limit 20.0%
first shadow failure: status 500 Internal Server Error at +1.2s
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestReportWriteWithoutBaselineOrFailure(t *testing.T) {
	r := &Report{Shadow: Side{Requests: 10}, Started: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC), Elapsed: time.Second, Duration: time.Second}
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"shadow  10        0.0% (0)", "envs: shadow -; no baseline\n", "first shadow failure: none\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "baseline  ") || strings.Contains(got, "ABORTED") {
		t.Errorf("summary:\n%s", got)
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine(15*time.Second, time.Minute, 39.84, 40, 600, 3)
	want := "\r[#####---------------] 15s/1m0s  shadow 40/40 req/s  errors 3/600 (0.5%)"
	if strings.TrimRight(got, " ") != want || len(got) != 1+progressLineWidth {
		t.Errorf("got %q, want %q padded to %d", got, want, progressLineWidth)
	}
}
