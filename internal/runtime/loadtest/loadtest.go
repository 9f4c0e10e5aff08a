// Package loadtest sends stress-test (shadow) traffic through a
// gray-release edge and reports how the shadow side held up against an
// unmarked baseline sent alongside (`graymesh loadtest`).
//
// Every shadow request carries the stress marker in its own header, which
// graymesh verifies at the edge; baseline requests never carry it. Each
// side has its own vegeta attacker, so a slow shadow side does not slow
// the baseline down. The shadow rate ramps up linearly, then holds.
//
// A load test is bounded by default: the target must be a loopback
// address unless the caller allows a remote one, the rates are capped
// (DefaultMaxRate unless raised), the run lasts at most MaxDuration, each
// request at most requestTimeout, and at most maxInFlight requests of a
// side are outstanding. It stops early when the shadow side's recent error
// rate passes the caller's limit.
package loadtest

import (
	"context"
	"io"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const (
	// MaxDuration bounds a run: a load test is an experiment, not a
	// background job.
	MaxDuration = time.Hour
	// DefaultMaxRate caps Rate and BaselineRate unless Options.MaxRate
	// says otherwise.
	DefaultMaxRate = 2000
	// DefaultAbortWindow is how far back the abort rule looks.
	DefaultAbortWindow = 5 * time.Second
	// DefaultAbortMinRequests is how many shadow requests the window must
	// hold before its error rate can abort the run: two failures of the
	// first three requests are no evidence.
	DefaultAbortMinRequests = 20
)

// Options say what to load and how hard.
type Options struct {
	// Target is the URL of the edge, e.g. http://127.0.0.1:10000/checkout.
	Target string
	// Marker is the stress marker token, sent in MarkerHeader on every
	// shadow request.
	Marker string
	// MarkerHeader is the marker's header (default
	// wire.HeaderStressMarker).
	MarkerHeader string
	// Rate is the shadow requests per second at full rate (> 0).
	Rate float64
	// RampUp is how long the shadow rate takes to rise linearly from 0 to
	// Rate; it then holds Rate until Duration (0: Rate from the start).
	RampUp time.Duration
	// Duration is the whole run (> 0, at most MaxDuration).
	Duration time.Duration
	// BaselineRate is the unmarked requests per second sent alongside at
	// a constant rate: the stable side of the comparison (0: none).
	BaselineRate float64
	// AbortErrorRate stops the run when the shadow side's error rate over
	// the last AbortWindow exceeds it (0..1); 0 never aborts.
	AbortErrorRate float64
	// AbortWindow is how far back the abort rule looks (default
	// DefaultAbortWindow).
	AbortWindow time.Duration
	// AbortMinRequests is how many shadow requests the window must hold
	// before the abort rule applies (default DefaultAbortMinRequests).
	AbortMinRequests int
	// AllowRemote allows a Target whose host is not a loopback address
	// (127.0.0.0/8, ::1, localhost); without it such a Target is refused.
	AllowRemote bool
	// Headers are extra request headers on both sides.
	Headers map[string]string
	// Progress, when set, gets a one-line progress bar redrawn with '\r'
	// at most every progressEvery. The caller decides whether it is a
	// terminal.
	Progress io.Writer
	// MaxRate refuses a Rate or BaselineRate above it (default
	// DefaultMaxRate).
	MaxRate float64
}

// Run sends the load o describes and reports both sides. It returns an
// error without sending anything when o is refused. When the abort rule
// fires, the report says so (Aborted) and the error is nil: an abort is a
// verdict. When ctx is cancelled, both sides stop and Run returns the
// partial report with ctx's error.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	// runCtx stops both sides: cancelled by ctx, by the abort rule, and on
	// return.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	r := &run{o: o, stop: stop, window: errorWindow{span: o.AbortWindow},
		report: &Report{Started: time.Now(), Duration: o.Duration}}
	shadowPacer := rampPacer{ctx: runCtx, rate: o.Rate, rampUp: o.RampUp, duration: o.Duration}
	shadow, releaseShadow := startAttack(runCtx, o.target(o.shadowHeaders()), shadowPacer, o.Duration)
	defer releaseShadow()
	var baseline <-chan *vegeta.Result // nil, never ready, when there is no baseline
	if o.BaselineRate > 0 {
		baselinePacer := rampPacer{ctx: runCtx, rate: o.BaselineRate, duration: o.Duration}
		var releaseBaseline func()
		baseline, releaseBaseline = startAttack(runCtx, o.target(o.baselineHeaders()), baselinePacer, o.Duration)
		defer releaseBaseline()
	}
	r.collect(runCtx, shadow, baseline, shadowPacer)
	r.report.Elapsed = time.Since(r.report.Started)
	r.report.Shadow, r.report.Baseline = r.shadow.side(), r.baseline.side()
	r.report.FirstFailure = r.shadow.firstFailure(r.report.Started)
	return r.report, ctx.Err()
}

// target is the one request a side sends over and over.
func (o Options) target(header http.Header) vegeta.Target {
	return vegeta.Target{Method: http.MethodGet, URL: o.Target, Header: header}
}

// baselineHeaders are the extra headers; the marker is never among them
// (validate refuses it).
func (o Options) baselineHeaders() http.Header {
	h := http.Header{}
	for name, value := range o.Headers {
		h.Set(name, value)
	}
	return h
}

// shadowHeaders are the baseline's with the marker.
func (o Options) shadowHeaders() http.Header {
	h := o.baselineHeaders()
	h.Set(o.MarkerHeader, o.Marker)
	return h
}

// run is one load test's state, owned by the goroutine that collects the
// results.
type run struct {
	o      Options
	stop   context.CancelFunc
	report *Report
	// shadow and baseline tally each side's results.
	shadow, baseline tally
	// window holds the shadow side's recent results for the abort rule.
	window errorWindow
	// drawn is what the last progress line showed, for its rate.
	drawn progressMark
}

// collect reads both sides' results until both attackers are done: at
// the end of the run, or soon after runCtx is cancelled, when their
// pacers stop and their requests in flight are cancelled.
func (r *run) collect(runCtx context.Context, shadow, baseline <-chan *vegeta.Result, pacer rampPacer) {
	var tick <-chan time.Time // nil, never ready, without a progress bar
	if r.o.Progress != nil {
		ticker := time.NewTicker(progressEvery)
		defer ticker.Stop()
		tick = ticker.C
		r.drawn = progressMark{at: r.report.Started}
		defer r.finishProgress(pacer)
	}
	for shadow != nil || baseline != nil {
		select {
		case res, ok := <-shadow:
			switch {
			case !ok:
				shadow = nil
			case runCtx.Err() == nil:
				// Once stopped, a result is a request this run cancelled
				// itself, not the edge's failure: it is not counted.
				r.addShadow(res)
			}
		case res, ok := <-baseline:
			switch {
			case !ok:
				baseline = nil
			case runCtx.Err() == nil:
				r.baseline.add(res)
			}
		case now := <-tick:
			r.drawProgress(now, pacer)
		}
	}
}

// addShadow counts a shadow result and applies the abort rule.
func (r *run) addShadow(res *vegeta.Result) {
	failed := r.shadow.add(res)
	if r.o.AbortErrorRate == 0 {
		return
	}
	r.window.add(res.End(), failed)
	reason := abortReason(r.window.failed, len(r.window.outcomes), r.window.span, r.o.AbortErrorRate, r.o.AbortMinRequests)
	if reason != "" {
		r.report.Aborted, r.report.AbortReason = true, reason
		r.stop()
	}
}
