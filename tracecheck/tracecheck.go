// Package tracecheck proves from traces that call chains stayed in their
// lane: every hop of a trace must be served by the environment the edge
// decided, unless the hop carries an explained fallback to stable.
//
// It reads traces in the Jaeger query API's JSON form. A hop is a server
// span tagged graymesh.served_env (demo services and any service that
// reports what served it); the edge's decision is graymesh's
// graymesh.decision span tagged graymesh.hop=edge.
package tracecheck

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Jaeger API types, only the fields the check reads.
type (
	// Response is the body of GET /api/traces.
	Response struct {
		Data []Trace `json:"data"`
	}
	// Trace is one trace.
	Trace struct {
		TraceID   string             `json:"traceID"`
		Spans     []Span             `json:"spans"`
		Processes map[string]Process `json:"processes"`
	}
	// Span is one span.
	Span struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		StartTime     int64  `json:"startTime"`
		Tags          []Tag  `json:"tags"`
		ProcessID     string `json:"processID"`
	}
	// Tag is a span attribute.
	Tag struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
	// Process names the service that reported a span.
	Process struct {
		ServiceName string `json:"serviceName"`
	}
)

func (s Span) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Hop is one service's part of a trace.
type Hop struct {
	Service  string `json:"service"`
	Served   string `json:"served"`
	Lane     string `json:"lane"`
	Fallback string `json:"fallback,omitempty"`
	Leak     bool   `json:"leak"`
}

// TraceResult is the check of one trace.
type TraceResult struct {
	TraceID string `json:"trace_id"`
	// Lane is what the edge decided.
	Lane    string `json:"lane"`
	Release string `json:"release,omitempty"`
	Reason  string `json:"reason"`
	Hops    []Hop  `json:"hops"`
	Leaks   int    `json:"leaks"`
}

// Report summarises a check.
type Report struct {
	TracesSeen    int `json:"traces_seen"`
	TracesChecked int `json:"traces_checked"`
	// Undecided traces have no edge decision span (e.g. not through the
	// edge, or the decision span not yet exported); they are not checked.
	Undecided   int           `json:"undecided"`
	HopsChecked int           `json:"hops_checked"`
	Leaks       int           `json:"leaks"`
	LeakRate    float64       `json:"leak_rate"`
	Fallbacks   int           `json:"fallbacks"`
	Traces      []TraceResult `json:"traces"`
}

// LeakingTraces returns the traces with at least one leak, at most n.
func (r *Report) LeakingTraces(n int) []TraceResult {
	var out []TraceResult
	for _, t := range r.Traces {
		if t.Leaks > 0 && len(out) < n {
			out = append(out, t)
		}
	}
	return out
}

const stable = "stable"

// Check verifies every trace.
func Check(traces []Trace) *Report {
	r := &Report{TracesSeen: len(traces)}
	for _, t := range traces {
		res, ok := checkTrace(t)
		if !ok {
			r.Undecided++
			continue
		}
		r.TracesChecked++
		r.HopsChecked += len(res.Hops)
		r.Leaks += res.Leaks
		for _, h := range res.Hops {
			if h.Fallback != "" && !h.Leak {
				r.Fallbacks++
			}
		}
		r.Traces = append(r.Traces, res)
	}
	if r.HopsChecked > 0 {
		r.LeakRate = float64(r.Leaks) / float64(r.HopsChecked)
	}
	return r
}

func checkTrace(t Trace) (TraceResult, bool) {
	spans := append([]Span(nil), t.Spans...)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime < spans[j].StartTime })
	res := TraceResult{TraceID: t.TraceID}
	decided := false
	for _, s := range spans {
		if s.OperationName == "graymesh.decision" && s.tag("graymesh.hop") == "edge" {
			res.Lane = s.tag("graymesh.env")
			if res.Lane == "route-default" {
				// Nothing decided at the edge: no lane travels, every
				// later hop serves stable.
				res.Lane = stable
			}
			res.Release, res.Reason = s.tag("graymesh.release"), s.tag("graymesh.reason")
			decided = true
			break
		}
	}
	if !decided {
		return res, false
	}
	for _, s := range spans {
		served := s.tag("graymesh.served_env")
		if served == "" {
			continue
		}
		service := s.tag("graymesh.service")
		if service == "" {
			service = t.Processes[s.ProcessID].ServiceName
		}
		h := Hop{Service: service, Served: served, Lane: s.tag("graymesh.lane"), Fallback: s.tag("graymesh.fallback")}
		switch {
		case served == res.Lane:
		case served == stable && h.Fallback != "" && h.Lane == res.Lane:
			// An explained fallback: this service has no version for the
			// lane, and the lane itself travelled on unchanged.
		default:
			h.Leak = true
			res.Leaks++
		}
		res.Hops = append(res.Hops, h)
	}
	return res, true
}

// Parse reads a Jaeger /api/traces response body.
func Parse(body []byte) ([]Trace, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not a Jaeger traces response: %w", err)
	}
	return r.Data, nil
}
