package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Side is what one side of the load test saw. An error is a transport
// error (including requestTimeout) or an HTTP status of 500 or more; a
// 4xx is the edge answering.
type Side struct {
	Requests, Errors int
	// ErrorRate is Errors/Requests (0 without requests).
	ErrorRate float64
	// P50…Max are latencies of every request, failed ones too, from when
	// it was sent (vegeta's latency).
	P50, P90, P99, Max time.Duration
	// Envs counts the responses by their x-gray-env header (wire.HeaderEnv),
	// "" when absent; requests without a response are not counted. The
	// edge routes on that request header but does not copy it to the
	// response, so an environment shows here only when the service sets
	// it on its response.
	Envs map[string]int
}

// Report is the outcome of a load test: the shadow side against the
// baseline.
type Report struct {
	Shadow, Baseline Side
	// Started is when the run began; Elapsed how long it ran, shorter than
	// Duration, the run asked for, when it was aborted or cancelled.
	Started  time.Time
	Elapsed  time.Duration
	Duration time.Duration
	// Aborted is true when the shadow side's error rate stopped the run;
	// AbortReason says what the abort rule saw.
	Aborted     bool
	AbortReason string
	// FirstFailure is the earliest-sent failing shadow request: its status
	// or error and when it was sent, from Started; "" without one.
	FirstFailure string
}

// Write writes a human summary: a table of both sides, the environments
// that answered, the abort and the first failure.
func (r *Report) Write(w io.Writer) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "load test from %s: ran %s of %s\n",
		r.Started.Format(time.RFC3339), r.Elapsed.Round(100*time.Millisecond), r.Duration)
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\trequests\terrors\tp50\tp90\tp99\tmax")
	sideRow(tw, "shadow", r.Shadow)
	if r.Baseline.Requests > 0 {
		sideRow(tw, "baseline", r.Baseline)
	}
	// Flushing a bytes.Buffer cannot fail.
	_ = tw.Flush()
	fmt.Fprintf(&buf, "envs: shadow %s", envList(r.Shadow.Envs))
	if r.Baseline.Requests > 0 {
		fmt.Fprintf(&buf, "; baseline %s", envList(r.Baseline.Envs))
	} else {
		buf.WriteString("; no baseline")
	}
	buf.WriteString("\n")
	if r.Aborted {
		fmt.Fprintf(&buf, "ABORTED: %s\n", r.AbortReason)
	}
	first := r.FirstFailure
	if first == "" {
		first = "none"
	}
	fmt.Fprintf(&buf, "first shadow failure: %s\n", first)
	_, err := w.Write(buf.Bytes())
	return err
}

// sideRow is one side's row of the table.
func sideRow(w io.Writer, name string, s Side) {
	fmt.Fprintf(w, "%s\t%d\t%.1f%% (%d)\t%s\t%s\t%s\t%s\n", name, s.Requests, 100*s.ErrorRate, s.Errors,
		roundLatency(s.P50), roundLatency(s.P90), roundLatency(s.P99), roundLatency(s.Max))
}

// envList is "gray 1180, stable 20", in name order, the absent header as
// "(none)".
func envList(envs map[string]int) string {
	if len(envs) == 0 {
		return "-"
	}
	names := make([]string, 0, len(envs))
	for name := range envs {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		label := name
		if label == "" {
			label = "(none)"
		}
		parts[i] = fmt.Sprintf("%s %d", label, envs[name])
	}
	return strings.Join(parts, ", ")
}

// roundLatency keeps three or so significant digits: 12.3ms, 1.23s.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// tally adds up one side's results.
type tally struct {
	requests, errors int
	envs             map[string]int
	// latencies estimates the quantiles in bounded memory (a t-digest),
	// whatever the run's length.
	latencies vegeta.LatencyMetrics
	// earliestFailure is the earliest-sent failing result.
	earliestFailure *vegeta.Result
}

// add counts res and reports whether it failed.
func (t *tally) add(res *vegeta.Result) (failed bool) {
	t.requests++
	t.latencies.Add(res.Latency)
	if res.Code != 0 {
		if t.envs == nil {
			t.envs = map[string]int{}
		}
		t.envs[res.Headers.Get(wire.HeaderEnv)]++
	}
	failed = res.Code == 0 || res.Code >= http.StatusInternalServerError
	if failed {
		t.errors++
		if t.earliestFailure == nil || res.Timestamp.Before(t.earliestFailure.Timestamp) {
			t.earliestFailure = res
		}
	}
	return failed
}

// side is the tally as a report's Side.
func (t *tally) side() Side {
	s := Side{Requests: t.requests, Errors: t.errors, Envs: t.envs}
	if t.requests == 0 {
		return s
	}
	s.ErrorRate = float64(t.errors) / float64(t.requests)
	s.P50, s.P90, s.P99 = t.latencies.Quantile(0.50), t.latencies.Quantile(0.90), t.latencies.Quantile(0.99)
	s.Max = t.latencies.Max
	return s
}

// firstFailure says what failed first and when it was sent, from started:
// "status 500 Internal Server Error at +1.2s".
func (t *tally) firstFailure(started time.Time) string {
	res := t.earliestFailure
	if res == nil {
		return ""
	}
	what := "status " + res.Error // vegeta's Error is the status line for a status ≥ 400
	if res.Code == 0 {
		what = "transport error: " + res.Error
	}
	return fmt.Sprintf("%s at +%s", what, res.Timestamp.Sub(started).Round(time.Millisecond))
}

// errorWindow holds the shadow results that ended within span of the
// newest one.
type errorWindow struct {
	span time.Duration
	// outcomes are in the order they arrived, which is close to the order
	// they ended.
	outcomes []outcome
	failed   int
}

// outcome is one result in the window.
type outcome struct {
	end    time.Time
	failed bool
}

// add puts a result that ended at end into the window and drops the ones
// that ended more than span before it.
func (w *errorWindow) add(end time.Time, failed bool) {
	w.outcomes = append(w.outcomes, outcome{end: end, failed: failed})
	if failed {
		w.failed++
	}
	cut := end.Add(-w.span)
	old := 0
	for old < len(w.outcomes) && w.outcomes[old].end.Before(cut) {
		if w.outcomes[old].failed {
			w.failed--
		}
		old++
	}
	// Re-slicing keeps the array; append moves the live part to a new one
	// when it fills, so the window's memory stays bounded.
	w.outcomes = w.outcomes[old:]
}

// abortReason is why the abort rule fires on failed of total requests in
// the window, or "" when it does not: a limit of 0 never fires, and fewer
// than minRequests are no evidence.
func abortReason(failed, total int, span time.Duration, limit float64, minRequests int) string {
	if limit == 0 || total == 0 || total < minRequests {
		return ""
	}
	rate := float64(failed) / float64(total)
	if rate <= limit {
		return ""
	}
	return fmt.Sprintf("shadow error rate %.1f%% over the last %s (%d of %d) > limit %.1f%%",
		100*rate, span, failed, total, 100*limit)
}
