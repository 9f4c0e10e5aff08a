package loadtest

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const (
	// requestTimeout bounds one request; a request that takes longer is a
	// transport error.
	requestTimeout = 10 * time.Second
	// maxInFlight bounds the requests one side has outstanding. When the
	// edge slows down so far that they are all waiting, the side falls
	// behind its schedule instead of opening ever more connections to a
	// system that is already struggling; the report's request count shows
	// it. At DefaultMaxRate that is 256 ms of latency.
	maxInFlight = 512
)

// startAttack starts one side: its own client and vegeta attacker sending
// target as pacer schedules it for at most d. The results channel closes
// when the side is done; release then frees what the side held.
func startAttack(runCtx context.Context, target vegeta.Target, pacer vegeta.Pacer, d time.Duration) (results <-chan *vegeta.Result, release func()) {
	client, transport := newClient(runCtx)
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.MaxWorkers(maxInFlight),
		// The body is drained and discarded: only status, headers and
		// latency count, and a side keeps no bodies in memory.
		vegeta.MaxBody(0),
	)
	// Stop unblocks the attacker when every worker is busy; the pacer
	// alone would not be asked again until one is free.
	stopOnCancel := context.AfterFunc(runCtx, func() { atk.Stop() })
	// No attack name: vegeta would send it in a header, and the two sides'
	// requests must differ by the marker only.
	results = atk.Attack(vegeta.NewStaticTargeter(target), pacer, d, "")
	return results, func() {
		stopOnCancel()
		transport.CloseIdleConnections()
	}
}

// newClient is a side's HTTP client: its own connections, no proxy (the
// load goes to Target itself, whatever the environment says), no
// redirects (which could lead the load off the checked Target), and every
// request cancelled with runCtx.
func newClient(runCtx context.Context) (*http.Client, *http.Transport) {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: requestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: maxInFlight,
		IdleConnTimeout:     30 * time.Second,
	}
	client := &http.Client{
		Transport: cancelWith{runCtx: runCtx, next: transport},
		Timeout:   requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return client, transport
}

// cancelWith cancels each request when runCtx is: vegeta builds requests
// without a context, and a stopped run must not wait requestTimeout for
// the requests it has in flight.
type cancelWith struct {
	runCtx context.Context
	next   http.RoundTripper
}

// RoundTrip implements http.RoundTripper. The request keeps its own
// context (the client's timeout) and is cancelled by runCtx as well, until
// its body is closed.
func (c cancelWith) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	unlink := context.AfterFunc(c.runCtx, cancel)
	done := func() {
		unlink()
		cancel()
	}
	resp, err := c.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = closeThen{ReadCloser: resp.Body, then: done}
	return resp, nil
}

// closeThen runs then once its body is closed.
type closeThen struct {
	io.ReadCloser
	then func()
}

// Close implements io.Closer.
func (c closeThen) Close() error {
	err := c.ReadCloser.Close()
	c.then()
	return err
}

// rampPacer schedules hits at a rate that rises linearly from 0 to rate
// over rampUp, then holds, until duration. It waits for the next hit
// itself so that a cancelled ctx stops the attack at once: vegeta's own
// sleep cannot be interrupted, and at a low rate it could outlast the
// run.
type rampPacer struct {
	ctx      context.Context
	rate     float64
	rampUp   time.Duration
	duration time.Duration
}

// Pace implements vegeta.Pacer: it waits until hit number hits+1 is due
// and stops at the end of the run or when ctx is cancelled.
func (p rampPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	next := p.due(hits + 1)
	if next > p.duration {
		return 0, true
	}
	wait := next - elapsed
	if wait <= 0 {
		return 0, false // behind schedule: send now
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return 0, false
	case <-p.ctx.Done():
		return 0, true
	}
}

// Rate implements vegeta.Pacer: the scheduled rate at elapsed.
func (p rampPacer) Rate(elapsed time.Duration) float64 {
	if elapsed < p.rampUp {
		return p.rate * elapsed.Seconds() / p.rampUp.Seconds()
	}
	return p.rate
}

// due is when hit n (from 1) is scheduled: when the area under the rate
// curve reaches n. The ramp's area is rate·rampUp/2; within it n hits
// take sqrt(2·n·rampUp/rate) seconds.
func (p rampPacer) due(n uint64) time.Duration {
	ramp := p.rampUp.Seconds()
	rampHits := p.rate * ramp / 2
	var seconds float64
	if float64(n) <= rampHits {
		seconds = math.Sqrt(2 * float64(n) * ramp / p.rate)
	} else {
		seconds = ramp + (float64(n)-rampHits)/p.rate
	}
	return time.Duration(seconds * float64(time.Second))
}
