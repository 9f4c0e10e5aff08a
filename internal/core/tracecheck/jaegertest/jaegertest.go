// Package jaegertest is a stand-in for Jaeger's query API in tests: it
// answers GET /api/traces the way Jaeger v2's memory store does — the
// traces it received last first, at most `limit` of them, no total, and
// an error for a limit above its capacity — so that readers can be tested
// against the paging they will really meet.
package jaegertest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/graymesh/graymesh/internal/core/tracecheck"
)

// Store holds traces in the order they were received.
type Store struct {
	// MaxTraces is the store's capacity; a search with a larger limit
	// fails as Jaeger's does (0: no check).
	MaxTraces int
	mu        sync.Mutex
	traces    []tracecheck.Trace
	requests  atomic.Int64
}

// Add appends traces as if received now, in this order.
func (s *Store) Add(traces ...tracecheck.Trace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traces = append(s.traces, traces...)
}

// Requests is the number of searches answered.
func (s *Store) Requests() int { return int(s.requests.Load()) }

// ServeHTTP answers GET /api/traces?service=&start=&end=&limit= (times in
// microseconds since the epoch, both ends included).
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/traces" {
		http.NotFound(w, r)
		return
	}
	s.requests.Add(1)
	q := r.URL.Query()
	service := q.Get("service")
	start, err1 := strconv.ParseInt(q.Get("start"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("end"), 10, 64)
	limit, err3 := strconv.Atoi(q.Get("limit"))
	if service == "" || err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		http.Error(w, `{"errors":[{"code":400,"msg":"bad query"}]}`, http.StatusBadRequest)
		return
	}
	if s.MaxTraces > 0 && limit > s.MaxTraces {
		http.Error(w, `{"errors":[{"code":500,"msg":"search depth must be greater than 0 and less than max traces"}]}`, http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	out := []tracecheck.Trace{}
	for i := len(s.traces) - 1; i >= 0 && len(out) < limit; i-- {
		if matches(s.traces[i], service, start, end) {
			out = append(out, s.traces[i])
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tracecheck.Response{Data: out})
}

// matches: a span of service starting in [start, end].
func matches(t tracecheck.Trace, service string, start, end int64) bool {
	for _, sp := range t.Spans {
		if t.Processes[sp.ProcessID].ServiceName == service && sp.StartTime >= start && sp.StartTime <= end {
			return true
		}
	}
	return false
}
