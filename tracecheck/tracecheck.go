// Package tracecheck proves from traces that call chains stayed in their
// lane: every hop of a trace must be served by the environment the edge
// decided, unless the hop carries an explained fallback to stable, or the
// chain switched to stable because its release was killed mid-flight.
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
	"sort"
	"strings"

	"github.com/graymesh/graymesh/wire"
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
	// Lane is what the edge decided.
	Lane    string `json:"lane"`
	Release string `json:"release,omitempty"`
	Reason  string `json:"reason"`
	// Switch names the service where the chain switched to stable because
	// its release was killed mid-flight.
	Switch string `json:"switch,omitempty"`
	Hops   []Hop  `json:"hops"`
	Leaks  int    `json:"leaks"`
}

// Report summarises a check.
type Report struct {
	TracesSeen    int `json:"traces_seen"`
	TracesChecked int `json:"traces_checked"`
	// Undecided counts the checked traces with no edge decision span
	// (graymesh down at the edge, or killed before it exported the span).
	Undecided int `json:"undecided"`
	// Unchecked counts the traces with neither an edge decision nor a hop:
	// nothing in them says which environment served what.
	Unchecked   int     `json:"unchecked"`
	HopsChecked int     `json:"hops_checked"`
	Leaks       int     `json:"leaks"`
	LeakRate    float64 `json:"leak_rate"`
	Fallbacks   int     `json:"fallbacks"`
	// Switches counts chains that switched to stable mid-flight because
	// their release was killed.
	Switches int           `json:"switches"`
	Traces   []TraceResult `json:"traces"`
	// Read says how the traces were read, when they came from Jaeger.
	Read *ReadStats `json:"read,omitempty"`
}

// LeakingTraces returns the traces with at least one leak, at most n.
func (r *Report) LeakingTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return t.Leaks > 0 })
}

// UndecidedTraces returns the checked traces without an edge decision, at
// most n.
func (r *Report) UndecidedTraces(n int) []TraceResult {
	return r.filter(n, func(t TraceResult) bool { return !t.Decided })
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
func Check(traces []Trace) *Report {
	r := &Report{TracesSeen: len(traces)}
	for _, t := range traces {
		res, ok := checkTrace(t)
		if !ok {
			r.Unchecked++
			continue
		}
		r.TracesChecked++
		if !res.Decided {
			r.Undecided++
		}
		if res.Switch != "" {
			r.Switches++
		}
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

// checkTrace checks one trace; false when it holds nothing to check.
func checkTrace(t Trace) (TraceResult, bool) {
	x := newIndex(t)
	res := TraceResult{TraceID: t.TraceID}
	if d, ok := x.edgeDecision(); ok {
		res.Decided = true
		res.Lane = d.firstTag(wire.AttrLane, legacyTagEnv)
		res.Release, res.Reason = d.tag(wire.AttrRelease), d.reason()
	}
	hops := x.hops()
	if !res.Decided {
		if len(hops) == 0 {
			return res, false
		}
		res.Lane, res.Reason = x.carriedLane()
	}
	if res.Lane == legacyRouteDefault || res.Lane == "" {
		// Nothing decided at the edge: no lane travels, every later hop
		// serves stable.
		res.Lane = stable
	}
	for _, hs := range hops {
		h := hs.hop
		h.Reason = x.ownReason(hs.span, h.Service)
		want, killed := res.Lane, false
		if want != stable && x.killedOnPath(hs.span) {
			// The release was killed while the request travelled: from
			// the hop that saw the kill on, the chain serves stable.
			want, killed = stable, true
		}
		switch {
		case h.Served == want:
			if killed && h.Reason == reasonKilled && res.Switch == "" {
				h.Switch = true
				res.Switch = h.Service
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

// index is one trace's spans in start order, with their parents.
type index struct {
	t      Trace
	spans  []Span
	parent []int // index into spans, -1 for none or unknown
	// reason is graymesh's reason for the hop a span begins: set on
	// sidecar spans (their reason tag) and, from an inner decision span,
	// on the server span the decision was made for.
	reason map[int]string
}

func newIndex(t Trace) *index {
	x := &index{t: t, spans: append([]Span(nil), t.Spans...), reason: map[int]string{}}
	sort.SliceStable(x.spans, func(i, j int) bool { return x.spans[i].StartTime < x.spans[j].StartTime })
	byID := make(map[string]int, len(x.spans))
	for i, s := range x.spans {
		byID[s.SpanID] = i
	}
	x.parent = make([]int, len(x.spans))
	for i, s := range x.spans {
		x.parent[i] = -1
		for _, ref := range s.References {
			p, ok := byID[ref.SpanID]
			if !ok || p == i {
				continue
			}
			if x.parent[i] < 0 || ref.RefType == "CHILD_OF" {
				x.parent[i] = p
			}
		}
	}
	for i, s := range x.spans {
		reason := s.reason()
		if reason == "" {
			continue
		}
		if !x.isDecision(i) {
			x.reason[i] = reason
			continue
		}
		if s.tag(wire.AttrHop) == wire.HopEdge {
			continue
		}
		if a := x.serverAncestor(i); a >= 0 {
			if _, set := x.reason[a]; !set {
				x.reason[a] = reason
			}
		}
	}
	return x
}

// isDecision: graymesh's decision spans are the ones that name their hop.
func (x *index) isDecision(i int) bool {
	return x.spans[i].tag(wire.AttrHop) != "" || x.spans[i].OperationName == legacyOpDecision
}

// isEnvoy: a sidecar's span, or any Envoy's (they name their upstream
// cluster).
func (x *index) isEnvoy(i int) bool {
	return strings.HasSuffix(x.serviceName(i), sidecarSuffix) || x.spans[i].tag(tagUpstream) != ""
}

// served is the environment a service's own span says served it; "" for
// any other span.
func (x *index) served(i int) string {
	s := x.spans[i]
	if served := s.tag(legacyTagServedEnv); served != "" {
		return served
	}
	if x.isDecision(i) || x.isEnvoy(i) {
		return ""
	}
	return s.tag(wire.AttrVariant)
}

func (x *index) serviceName(i int) string {
	return x.t.Processes[x.spans[i].ProcessID].ServiceName
}

// serverAncestor is the nearest server span above span i reported by
// another process: for a decision, the sidecar span of the request it
// decided (above graymesh's own gRPC server span and the sidecar's
// ext_proc call).
func (x *index) serverAncestor(i int) int {
	own := x.spans[i].ProcessID
	for n, a := 0, x.parent[i]; a >= 0 && n < maxAncestorWalk; n, a = n+1, x.parent[a] {
		if s := x.spans[a]; s.ProcessID != own && s.tag(tagSpanKind) == "server" {
			return a
		}
	}
	return -1
}

func (x *index) edgeDecision() (Span, bool) {
	for i, s := range x.spans {
		if x.isDecision(i) && s.tag(wire.AttrHop) == wire.HopEdge {
			return s, true
		}
	}
	return Span{}, false
}

// carriedLane is the lane and reason of the first span that carries a
// lane, for a trace whose edge decision is missing: the edge sidecar's
// span when it was exported, else the first service's.
func (x *index) carriedLane() (lane, reason string) {
	for i, s := range x.spans {
		if x.isDecision(i) {
			continue
		}
		if lane := s.tag(wire.AttrLane); lane != "" {
			return lane, s.reason()
		}
	}
	return stable, ""
}

type hopSpan struct {
	span int
	hop  Hop
}

// hops are the spans that say which environment served a service, in
// start order: every service span that says so, and, for a service with
// none, the innermost of its sidecar spans that name the service's
// environment cluster.
func (x *index) hops() []hopSpan {
	var out []hopSpan
	reported := map[string]bool{}
	for i, s := range x.spans {
		served := x.served(i)
		if served == "" {
			continue
		}
		service := s.tag(wire.AttrService)
		if service == "" {
			service = x.serviceName(i)
		}
		reported[service] = true
		out = append(out, hopSpan{i, Hop{Service: service, Served: served, Lane: s.tag(wire.AttrLane), Fallback: s.tag(wire.AttrFallback)}})
	}
	sidecar := map[string][]int{}
	for i, s := range x.spans {
		service, ok := strings.CutSuffix(x.serviceName(i), sidecarSuffix)
		if !ok || reported[service] {
			continue
		}
		if svc, env, ok := strings.Cut(s.tag(tagUpstream), "|"); ok && svc == service && env != "" {
			sidecar[service] = append(sidecar[service], i)
		}
	}
	for service, spans := range sidecar {
		for _, i := range spans {
			if x.hasDescendantIn(i, spans) {
				// The fallback listener's span under the inbound span
				// names the cluster that really served.
				continue
			}
			s := x.spans[i]
			// The endpoint that served says which environment it is;
			// traces from before the vocabulary only name the cluster.
			served := s.tag(wire.AttrVariant)
			if served == "" {
				_, served, _ = strings.Cut(s.tag(tagUpstream), "|")
			}
			out = append(out, hopSpan{i, Hop{Service: service, Served: served, Lane: s.tag(wire.AttrLane), Fallback: s.tag(wire.AttrFallback), From: "sidecar"}})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].span < out[b].span })
	return out
}

// hasDescendantIn reports whether one of spans descends from span i.
func (x *index) hasDescendantIn(i int, spans []int) bool {
	for _, j := range spans {
		if j != i && x.isAncestor(i, j) {
			return true
		}
	}
	return false
}

func (x *index) isAncestor(a, i int) bool {
	for n, p := 0, x.parent[i]; p >= 0 && n < maxAncestorWalk; n, p = n+1, x.parent[p] {
		if p == a {
			return true
		}
	}
	return false
}

// ownReason is graymesh's reason for the hop of service that span i
// belongs to: from the nearest span above it (or itself) that carries
// one, stopping at the previous hop. A span with no parent in the trace
// falls back to the latest reason recorded for the service before it.
func (x *index) ownReason(i int, service string) string {
	if x.parent[i] < 0 {
		reason := ""
		for j, s := range x.spans[:i+1] {
			r, ok := x.reason[j]
			if ok && (x.serviceName(j) == service+sidecarSuffix || j == i) {
				reason = r
			}
			if x.isDecision(j) && s.tag(wire.AttrHop) != wire.HopEdge && s.tag(wire.AttrService) == service && s.reason() != "" {
				reason = s.reason()
			}
		}
		return reason
	}
	for n, a := 0, i; a >= 0 && n < maxAncestorWalk; n, a = n+1, x.parent[a] {
		if r, ok := x.reason[a]; ok {
			return r
		}
		if a != i && x.served(a) != "" {
			return ""
		}
	}
	return ""
}

// killedOnPath reports whether a hop on the way to span i (or its own)
// found the release killed. A span with no parent in the trace falls back
// to start order: any kill seen before it.
func (x *index) killedOnPath(i int) bool {
	if x.parent[i] < 0 {
		for j, s := range x.spans[:i+1] {
			if x.reason[j] == reasonKilled {
				return true
			}
			if x.isDecision(j) && s.tag(wire.AttrHop) != wire.HopEdge && s.reason() == reasonKilled {
				return true
			}
		}
		return false
	}
	for n, a := 0, i; a >= 0 && n < maxAncestorWalk; n, a = n+1, x.parent[a] {
		if x.reason[a] == reasonKilled {
			return true
		}
	}
	return false
}

// Parse reads a Jaeger /api/traces response body.
func Parse(body []byte) ([]Trace, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not a Jaeger traces response: %w", err)
	}
	return r.Data, nil
}
