// Package analysistest is an analysis.Source a test sets by hand.
package analysistest

import (
	"context"
	"sync"

	"github.com/graymesh/graymesh/internal/core/analysis"
)

// Source answers every window with the observations it holds.
type Source struct {
	mu  sync.Mutex
	obs *analysis.Observations
	err error
}

var _ analysis.Source = (*Source)(nil)

// Set makes every window of service shop see gray and stable.
func (f *Source) Set(gray, stable analysis.Side) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.obs = &analysis.Observations{Services: []analysis.Observation{{Service: "shop", Gray: gray, Stable: stable}}}
}

// SetErr makes every window's Collect fail with err (nil: answer again).
func (f *Source) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Collect implements analysis.Source.
func (f *Source) Collect(context.Context, analysis.Query) (*analysis.Observations, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.obs, f.err
}

// Side is n requests, errs of them errors, the rest answered in about ms
// milliseconds.
func Side(n, errs int, ms float64) analysis.Side {
	s := analysis.Side{Requests: n, Errors: errs}
	for i := 0; i < n-errs; i++ {
		s.Latencies = append(s.Latencies, ms+float64(i%7)*0.1)
	}
	return s
}
