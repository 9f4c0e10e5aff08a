package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spreads: how a share of requests is picked for a fault.
const (
	// spreadEven picks exactly every 1/rate-th request, so a window of n
	// requests holds n·rate of them whatever the traffic's timing.
	spreadEven = "even"
	// spreadRandom picks each request independently with probability
	// rate, as a real regression does: a window's count is binomial and
	// varies from window to window.
	spreadRandom = "random"
)

// faultConfig is how this version of the service is made worse on purpose,
// to see an analysis catch it. /healthz and /fault are never affected.
type faultConfig struct {
	// errorRate of all requests (0–1) are answered 500.
	errorRate float64
	// latency delays every request.
	latency time.Duration
	// spread is spreadEven or spreadRandom, for every share below and above.
	spread string
	// pathPrefix, when set, fails pathErrorRate (0–1) of the requests whose
	// path starts with it (a plain string prefix, as Envoy's prefix match),
	// on top of errorRate: a regression on one route only.
	pathPrefix    string
	pathErrorRate float64
	// slowShare (0–1) of the requests are delayed by slowDelay on top of
	// latency: a slow tail with the median unchanged.
	slowShare float64
	slowDelay time.Duration
}

// faultSettings is faultConfig as /fault shows it.
type faultSettings struct {
	ErrorRate     float64 `json:"error_rate"`
	Latency       string  `json:"latency"`
	Spread        string  `json:"spread"`
	Path          string  `json:"path,omitempty"`
	PathErrorRate float64 `json:"path_error_rate"`
	SlowShare     float64 `json:"slow_share"`
	SlowDelay     string  `json:"slow_delay"`
}

func (c faultConfig) settings() faultSettings {
	return faultSettings{ErrorRate: c.errorRate, Latency: c.latency.String(), Spread: c.spread,
		Path: c.pathPrefix, PathErrorRate: c.pathErrorRate, SlowShare: c.slowShare, SlowDelay: c.slowDelay.String()}
}

// validate names every field out of range.
func (c faultConfig) validate() error {
	var errs []error
	for _, share := range []struct {
		field string
		v     float64
	}{{"error_rate", c.errorRate}, {"path_error_rate", c.pathErrorRate}, {"slow_share", c.slowShare}} {
		if !(share.v >= 0 && share.v <= 1) {
			errs = append(errs, fmt.Errorf("%s %v is outside 0–1", share.field, share.v))
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"latency", c.latency}, {"slow_delay", c.slowDelay}} {
		if d.v < 0 || d.v > time.Minute {
			errs = append(errs, fmt.Errorf("%s %s is outside 0–1m", d.field, d.v))
		}
	}
	if c.spread != spreadEven && c.spread != spreadRandom {
		errs = append(errs, fmt.Errorf("spread %q is neither %s nor %s", c.spread, spreadEven, spreadRandom))
	}
	if c.pathErrorRate > 0 && !strings.HasPrefix(c.pathPrefix, "/") {
		errs = append(errs, fmt.Errorf("path %q: path_error_rate needs a path starting with /", c.pathPrefix))
	}
	if c.slowShare > 0 && c.slowDelay == 0 {
		errs = append(errs, errors.New("slow_share needs a slow_delay"))
	}
	return errors.Join(errs...)
}

// sleeper waits d or until ctx is done, and says whether d passed.
type sleeper func(ctx context.Context, d time.Duration) bool

func sleepContext(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fault applies a faultConfig to requests.
type fault struct {
	mu  sync.Mutex
	cfg faultConfig
	rng *rand.Rand
	// owed accumulates each even share per request; a request is picked
	// when its share reaches 1.
	owedErrors, owedPath, owedSlow float64
	sleep                          sleeper
}

// newFault makes a fault with no fault in force, drawing its random
// spread from seed.
func newFault(seed uint64) *fault {
	return &fault{cfg: faultConfig{spread: spreadEven}, rng: rand.New(rand.NewPCG(seed, seed)), sleep: sleepContext}
}

func (f *fault) set(c faultConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg, f.owedErrors, f.owedPath, f.owedSlow = c, 0, 0, 0
	return nil
}

func (f *fault) settings() faultSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.settings()
}

// pick says whether this request is one of rate's share; owed carries the
// even spread's remainder. The caller holds mu.
func (f *fault) pick(owed *float64, rate float64) bool {
	if rate <= 0 {
		return false
	}
	if f.cfg.spread == spreadRandom {
		return f.rng.Float64() < rate
	}
	*owed += rate
	if *owed >= 1 {
		*owed--
		return true
	}
	return false
}

// next says how a request for path is to be spoiled.
func (f *fault) next(path string) (fail bool, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail = f.pick(&f.owedErrors, f.cfg.errorRate)
	if f.cfg.pathPrefix != "" && strings.HasPrefix(path, f.cfg.pathPrefix) {
		// Drawn even when already failing, so the path's own share does
		// not depend on errorRate.
		fail = f.pick(&f.owedPath, f.cfg.pathErrorRate) || fail
	}
	delay = f.cfg.latency
	if f.pick(&f.owedSlow, f.cfg.slowShare) {
		delay += f.cfg.slowDelay
	}
	return fail, delay
}

// wrap applies the fault before h answers.
func (f *fault) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail, delay := f.next(r.URL.Path)
		if delay > 0 && !f.sleep(r.Context(), delay) {
			return
		}
		if fail {
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// parseFault reads a faultConfig from /fault's query: absent values are
// zero, spread defaults to even.
func parseFault(q url.Values) (faultConfig, error) {
	c := faultConfig{spread: q.Get("spread"), pathPrefix: q.Get("path")}
	if c.spread == "" {
		c.spread = spreadEven
	}
	var errs []error
	for _, share := range []struct {
		field string
		to    *float64
	}{{"error_rate", &c.errorRate}, {"path_error_rate", &c.pathErrorRate}, {"slow_share", &c.slowShare}} {
		if s := q.Get(share.field); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", share.field, err))
			}
			*share.to = v
		}
	}
	for _, d := range []struct {
		field string
		to    *time.Duration
	}{{"latency", &c.latency}, {"slow_delay", &c.slowDelay}} {
		if s := q.Get(d.field); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.field, err))
			}
			*d.to = v
		}
	}
	return c, errors.Join(errs...)
}

// handle answers GET /fault (the settings) and POST /fault?error_rate=R&
// latency=D&spread=even|random&path=P&path_error_rate=R&slow_share=S&
// slow_delay=D (replace them all; absent values become 0).
func (f *fault) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		c, err := parseFault(r.URL.Query())
		if err == nil {
			err = f.set(c)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	} else if r.Method != http.MethodGet {
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(f.settings())
}
