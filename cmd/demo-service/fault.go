package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// fault makes this version of the service worse on purpose, to see an
// analysis catch it: ErrorRate of the requests (0–1) are answered 500 and
// every request is delayed by Latency. Failures are spread evenly (every
// 1/ErrorRate-th request), so a window of n requests holds n·ErrorRate of
// them whatever the traffic's timing. /healthz is never affected.
type fault struct {
	mu        sync.Mutex
	errorRate float64
	latency   time.Duration
	// owed accumulates ErrorRate per request; a request fails when it
	// reaches 1.
	owed float64
}

type faultSettings struct {
	ErrorRate float64 `json:"error_rate"`
	Latency   string  `json:"latency"`
}

func (f *fault) set(rate float64, latency time.Duration) error {
	if rate < 0 || rate > 1 {
		return fmt.Errorf("error rate %v is outside 0–1", rate)
	}
	if latency < 0 || latency > time.Minute {
		return fmt.Errorf("latency %s is outside 0–1m", latency)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errorRate, f.latency, f.owed = rate, latency, 0
	return nil
}

func (f *fault) settings() faultSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return faultSettings{ErrorRate: f.errorRate, Latency: f.latency.String()}
}

// next says how this request is to be spoiled.
func (f *fault) next() (fail bool, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owed += f.errorRate
	if f.owed >= 1 {
		f.owed--
		fail = true
	}
	return fail, f.latency
}

// wrap applies the fault before h answers.
func (f *fault) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail, delay := f.next()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// handle answers GET /fault (the settings) and POST
// /fault?error_rate=R&latency=D (change them; absent values become 0).
func (f *fault) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		q := r.URL.Query()
		var (
			rate    float64
			latency time.Duration
			err     error
		)
		if s := q.Get("error_rate"); s != "" {
			if rate, err = strconv.ParseFloat(s, 64); err != nil {
				http.Error(w, "error_rate: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if s := q.Get("latency"); s != "" {
			if latency, err = time.ParseDuration(s); err != nil {
				http.Error(w, "latency: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if err := f.set(rate, latency); err != nil {
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
