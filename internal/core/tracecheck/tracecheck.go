// Package tracecheck proves from traces that call chains stayed in their
// lane: every hop of a trace must be served by the environment the edge
// decided, unless the hop carries an explained fallback to stable, or the
// chain switched to stable because its release was killed mid-flight.
// A chain stopped as killed at a hop whose node had not yet applied the
// revive the edge decided under (the edge's version is newer than the
// newest the hop's kill stops) is no kill: it is a lagging-node split,
// counted apart.
//
// It reads traces in the Jaeger query API's JSON form, in the trace
// vocabulary of package wire (docs/traces.md). A hop is a service's own
// span that says which environment served it (feature_flag.result.variant,
// from demo services and any service that reports it) or, for a service
// that reports no such span, its sidecar's span (process
// "<service>-sidecar": its variant, else its upstream_cluster
// "<service>|<env>"). The edge's decision is graymesh's decision span
// tagged graymesh.hop=edge. A trace without one (graymesh down, or its
// spans lost) is still checked, against the lane its sidecar and service
// spans carry, and counted apart as undecided.
//
// Traces recorded before the vocabulary (decision span "graymesh.decision"
// with graymesh.env, graymesh.reason on sidecar spans, graymesh.served_env
// on service spans) still check: those names are read too.
package tracecheck

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
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
		SpanID        string      `json:"spanID"`
		OperationName string      `json:"operationName"`
		References    []Reference `json:"references,omitempty"`
		StartTime     int64       `json:"startTime"`
		Tags          []Tag       `json:"tags"`
		ProcessID     string      `json:"processID"`
	}
	// Reference links a span to its parent (refType CHILD_OF) or to a
	// span it follows (FOLLOWS_FROM).
	Reference struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
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

// Attributes the check reads besides the trace vocabulary's, and the
// names traces recorded before it used.
const (
	tagSpanKind     = "span.kind"
	tagUpstream     = "upstream_cluster"
	reasonKilled    = "killed"
	sidecarSuffix   = "-sidecar"
	stable          = "stable"
	maxAncestorWalk = 256

	legacyOpDecision   = "graymesh.decision"
	legacyTagEnv       = "graymesh.env"
	legacyTagServedEnv = "graymesh.served_env"
	legacyTagReason    = "graymesh.reason"
	legacyRouteDefault = "route-default"
	// legacyReasonLaneMissing is what an inner hop handed no lane said
	// before; it reads as wire.ReasonDefault.
	legacyReasonLaneMissing = "lane-missing"
)

// firstTag is the first of keys s carries.
func (s Span) firstTag(keys ...string) string {
	for _, k := range keys {
		if v := s.tag(k); v != "" {
			return v
		}
	}
	return ""
}

// reason is graymesh's reason a span carries, in the trace vocabulary.
func (s Span) reason() string {
	r := s.firstTag(wire.AttrReason, legacyTagReason)
	if r == legacyReasonLaneMissing {
		return wire.ReasonDefault
	}
	return r
}

// Hop is one service's part of a trace.
type Hop struct {
	Service  string `json:"service"`
	Served   string `json:"served"`
	Lane     string `json:"lane"`
	Fallback string `json:"fallback,omitempty"`
	// Reason is why this hop's sidecar routed as it did (graymesh's
	// decision for the hop), when a span says so.
	Reason string `json:"reason,omitempty"`
	// Switch marks the hop where the chain switched to stable because its
	// release was killed mid-flight: explained, not a leak.
	Switch bool `json:"switch,omitempty"`
	// StressLost marks a hop of a stress-test chain where no span of the
	// service says stress: its service may have written shadow load as
	// real data.
	StressLost bool `json:"stress_lost,omitempty"`
	// Split marks the hop that stopped the chain as killed although the
	// edge decided under a newer version than the kill there stops: its
	// node had not caught up with the revive.
	Split bool `json:"split,omitempty"`
	// KilledThrough is, at a hop a kill stopped, the newest lane version
	// that kill stops (its node's version), when the span says it.
	KilledThrough string `json:"killed_through,omitempty"`
	// From is "sidecar" when the hop was read from the service's sidecar
	// span because the service reported none of its own.
	From string `json:"from,omitempty"`
	Leak bool   `json:"leak"`
}

// TraceResult is the check of one trace.
type TraceResult struct {
	TraceID string `json:"trace_id"`
	// Decided is false when the trace has no edge decision span; Lane
	// and Reason are then read from its first span that carries a lane
	// (stable when none does: nothing decided, the route default served).
	Decided bool `json:"decided"`
	// Native is true for a trace Envoy decided without asking graymesh:
	// its edge split an anonymous request itself (reason traffic-envoy)
	// or routed a returning caller on its proof (reason proof), so no
	// decision span is to be had.
	Native bool `json:"native,omitempty"`
	// Lane is what the edge decided.
	Lane    string `json:"lane"`
	Release string `json:"release,omitempty"`
	Reason  string `json:"reason"`
	// Version is the config version the edge decided under.
	Version string `json:"version,omitempty"`
	// Switch names the service where the chain switched to stable because
	// its release was killed mid-flight.
	Switch string `json:"switch,omitempty"`
	// FailOpen is true when graymesh decided but its answer never took
	// effect: the edge sidecar's span says the ext_proc call failed open
	// (reason "error"), or names another lane than the decision. Lane is
	// then what the edge really routed on, DecidedLane what graymesh
	// decided too late.
	FailOpen    bool   `json:"fail_open,omitempty"`
	DecidedLane string `json:"decided_lane,omitempty"`
	// Split names the service whose node, behind the edge's, stopped the
	// chain as killed (Hop.Split).
	Split string `json:"split,omitempty"`
	// Stress is true for a stress-test (shadow) chain: a span of it says
	// graymesh.stress. It is checked like any chain; StressLost counts
	// its hops that lost the mark (Hop.StressLost).
	Stress     bool  `json:"stress,omitempty"`
	StressLost int   `json:"stress_lost,omitempty"`
	Hops       []Hop `json:"hops"`
	Leaks      int   `json:"leaks"`
}

// Report summarises a check.
type Report struct {
	TracesSeen    int `json:"traces_seen"`
	TracesChecked int `json:"traces_checked"`
	// Undecided counts the checked traces with no edge decision span
	// (graymesh down at the edge, or killed before it exported the span).
	Undecided int `json:"undecided"`
	// Native counts the checked traces Envoy's edge routed itself
	// (TraceResult.Native); they are not undecided.
	Native int `json:"native"`
	// Unchecked counts the traces with neither an edge decision nor a hop:
	// nothing in them says which environment served what.
	Unchecked   int `json:"unchecked"`
	HopsChecked int `json:"hops_checked"`
	Leaks       int `json:"leaks"`
	// LeakingChains counts the chains with at least one leaking hop.
	LeakingChains int     `json:"leaking_chains"`
	LeakRate      float64 `json:"leak_rate"`
	// FailOpens counts the chains whose edge decision never took effect
	// (ext_proc failed open: the edge served as if graymesh had not
	// answered); they are checked against what the edge routed on.
	FailOpens int `json:"fail_opens"`
	// Pending counts the traces left unjudged because their newest span
	// is younger than the settle time: their other spans may still be on
	// their way to Jaeger.
	Pending   int `json:"pending"`
	Fallbacks int `json:"fallbacks"`
	// Switches counts chains that switched to stable mid-flight because
	// their release was killed.
	Switches int `json:"switches"`
	// LaggingSplits counts chains stopped as killed by a node that had not
	// caught up with the version the edge decided under: not kills.
	LaggingSplits int `json:"lagging_splits"`
	// Stress counts the stress-test (shadow) chains among the checked,
	// StressLost their hops whose service lost the mark.
	Stress     int           `json:"stress"`
	StressLost int           `json:"stress_lost"`
	Traces     []TraceResult `json:"traces"`
	// Read says how the traces were read, when they came from Jaeger.
	Read *ReadStats `json:"read,omitempty"`
}

// LeakingTraces returns the traces with at least one leak, at most n.
func (r *Report) LeakingTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return t.Leaks > 0 })
}

// FailOpenTraces returns the traces whose edge decision never took
// effect, at most n.
func (r *Report) FailOpenTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return t.FailOpen })
}

// SplitTraces returns the traces a lagging node split, at most n.
func (r *Report) SplitTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return t.Split != "" })
}

// UndecidedTraces returns the checked traces without an edge decision, at
// most n.
func (r *Report) UndecidedTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return !t.Decided && !t.Native })
}

func (r *Report) filter(n int, keep func(TraceResult) bool) []TraceResult {
	var out []TraceResult
	for _, t := range r.Traces {
		if len(out) == n {
			break
		}
		if keep(t) {
			out = append(out, t)
		}
	}
	return out
}

// Check verifies every trace.
func Check(traces []Trace) *Report { return CheckSettled(traces, time.Time{}, 0) }

// CheckSettled verifies every trace whose newest span started at least
// settle before now; younger ones are counted as pending, not judged: the
// spans of one chain reach Jaeger from several processes, each on its own
// flush interval (Envoy's 5 s, graymesh's batch), so a young trace may
// look undecided or leaking only because a span is still on its way.
func CheckSettled(traces []Trace, now time.Time, settle time.Duration) *Report {
	r := &Report{TracesSeen: len(traces)}
	for _, t := range traces {
		if !Settled(t, now, settle) {
			r.Pending++
			continue
		}
		res, ok := checkTrace(t)
		if !ok {
			r.Unchecked++
			continue
		}
		r.Add(res)
	}
	return r
}

// Settled reports whether t's newest span started at least settle before
// now (always, for a settle of 0).
func Settled(t Trace, now time.Time, settle time.Duration) bool {
	return settle <= 0 || !newestStart(t).After(now.Add(-settle))
}

// CheckTrace checks one trace; false when it holds nothing to check.
func CheckTrace(t Trace) (TraceResult, bool) { return checkTrace(t) }

// Add counts one checked trace into the report, as Check does: a caller
// that keeps results across reads (the console) tallies them with it.
func (r *Report) Add(res TraceResult) {
	r.TracesChecked++
	switch {
	case res.Native:
		r.Native++
	case !res.Decided:
		r.Undecided++
	}
	if res.Switch != "" {
		r.Switches++
	}
	if res.Split != "" {
		r.LaggingSplits++
	}
	r.HopsChecked += len(res.Hops)
	r.Leaks += res.Leaks
	if res.Leaks > 0 {
		r.LeakingChains++
	}
	if res.FailOpen {
		r.FailOpens++
	}
	if res.Stress {
		r.Stress++
	}
	r.StressLost += res.StressLost
	for _, h := range res.Hops {
		if h.Fallback != "" && !h.Leak {
			r.Fallbacks++
		}
	}
	r.Traces = append(r.Traces, res)
	r.LeakRate = float64(r.Leaks) / float64(max(r.HopsChecked, 1))
}

// checkTrace checks one trace; false when it holds nothing to check.
func checkTrace(t Trace) (TraceResult, bool) {
	x := newIndex(t)
	res := TraceResult{TraceID: t.TraceID}
	if d, i, ok := x.edgeDecision(); ok {
		res.Decided = true
		res.Lane = d.firstTag(wire.AttrLane, legacyTagEnv)
		res.Release, res.Reason, res.Version = d.tag(wire.AttrRelease), d.reason(), d.tag(wire.AttrVersion)
		if routed, lost := x.answerLost(i, res.Lane); lost {
			res.FailOpen, res.DecidedLane, res.Lane = true, res.Lane, routed
		}
	}
	hops := x.hops()
	if !res.Decided {
		if len(hops) == 0 {
			return res, false
		}
		res.Lane, res.Reason = x.carriedLane()
		res.Native = res.Reason == wire.ReasonTrafficEnvoy || res.Reason == wire.ReasonProof
	}
	if res.Lane == legacyRouteDefault || res.Lane == "" {
		// Nothing decided at the edge: no lane travels, every later hop
		// serves stable.
		res.Lane = stable
	}
	marked := x.stressed()
	res.Stress = len(marked) > 0
	for _, hs := range hops {
		h := hs.hop
		h.Reason, h.KilledThrough = x.ownReason(hs.span, h.Service)
		if res.Stress && !marked[h.Service] {
			h.StressLost = true
			res.StressLost++
		}
		want, killed := res.Lane, false
		if want != stable && x.killedOnPath(hs.span) {
			// The release was killed while the request travelled: from
			// the hop that saw the kill on, the chain serves stable.
			want, killed = stable, true
		}
		switch {
		case h.Served == want:
			if killed && h.Reason == reasonKilled && res.Switch == "" && res.Split == "" {
				if newer(res.Version, h.KilledThrough) {
					h.Split, res.Split = true, h.Service
				} else {
					h.Switch, res.Switch = true, h.Service
				}
			}
		case h.Served == stable && h.Fallback != "" && h.Lane == want:
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

// newestStart is when the trace's newest span started.
func newestStart(t Trace) time.Time {
	var newest int64
	for _, s := range t.Spans {
		newest = max(newest, s.StartTime)
	}
	return time.UnixMicro(newest)
}

// newer reports whether the edge decided under a version after the
// newest the hop's kill stops: both integers (fleet versions), decided
// greater than killedThrough. A span that says no bound (file mode, or a
// sidecar from before the bound) is read as a kill.
func newer(decided, killedThrough string) bool {
	d, err := strconv.ParseInt(decided, 10, 64)
	if err != nil {
		return false
	}
	k, err := strconv.ParseInt(killedThrough, 10, 64)
	return err == nil && d > k
}

// Parse reads a Jaeger /api/traces response body.
func Parse(body []byte) ([]Trace, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not a Jaeger traces response: %w", err)
	}
	return r.Data, nil
}
