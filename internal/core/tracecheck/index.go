// The span tree of one trace: which spans are decisions or Envoy's, who
// is whose ancestor, which hop served what.

package tracecheck

import (
	"sort"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// index is one trace's spans in start order, with their parents.
type index struct {
	t      Trace
	spans  []Span
	parent []int // index into spans, -1 for none or unknown
	// reason is graymesh's reason for the hop a span begins: set on
	// sidecar spans (their reason tag) and, from an inner decision span,
	// on the server span the decision was made for.
	reason map[int]string
	// killedThrough is, on a sidecar span whose kill route compares
	// versions, the newest lane version that kill stops there (its
	// node's version).
	killedThrough map[int]string
}

func newIndex(t Trace) *index {
	x := &index{t: t, spans: append([]Span(nil), t.Spans...), reason: map[int]string{}, killedThrough: map[int]string{}}
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
			if v := s.tag(wire.AttrVersion); reason == reasonKilled && v != "" {
				x.killedThrough[i] = v
			}
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

// stressed is the services with a span marked graymesh.stress (their own,
// their sidecar's or their decision's): empty unless the trace is a
// stress-test chain.
func (x *index) stressed() map[string]bool {
	out := map[string]bool{}
	for i, s := range x.spans {
		if s.tag(wire.AttrStress) != "1" {
			continue
		}
		service := s.tag(wire.AttrService)
		if service == "" {
			service = strings.TrimSuffix(x.serviceName(i), sidecarSuffix)
		}
		out[service] = true
	}
	return out
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

func (x *index) edgeDecision() (Span, int, bool) {
	for i, s := range x.spans {
		if x.isDecision(i) && s.tag(wire.AttrHop) == wire.HopEdge {
			return s, i, true
		}
	}
	return Span{}, -1, false
}

// answerLost reports whether the edge decision span i never took effect,
// and the lane the edge routed on instead. The edge sidecar's span (the
// server span the decision was made for) says so: its reason is "error"
// (graymesh's answer, which carries the reason, never arrived: Envoy's
// message timeout expired and the filter failed open), or it carries no
// reason of graymesh's and another lane than the decision's. graymesh's
// decision span, finished after the timeout, still says what it decided.
func (x *index) answerLost(i int, decided string) (routed string, lost bool) {
	a := x.serverAncestor(i)
	if a < 0 {
		return "", false
	}
	s := x.spans[a]
	routed = s.tag(wire.AttrLane)
	switch reason := s.reason(); {
	case reason == wire.ReasonError:
	case reason == "" && decided != "" && decided != legacyRouteDefault && routed != "" && routed != decided:
	default:
		return "", false
	}
	if routed == "" {
		routed = stable
	}
	return routed, true
}

// enteredAtFallback reports whether span i is a fallback listener's span
// with no parent in the trace (a caller's traceparent may name one that
// is not): someone called the fallback listener directly, so the lane it
// carries (the x-gray-env header, which that listener does not strip) is
// the caller's text, not graymesh's.
func (x *index) enteredAtFallback(i int) bool {
	return x.parent[i] < 0 &&
		strings.HasPrefix(x.spans[i].OperationName, wire.SpanFallback+" ") &&
		strings.HasSuffix(x.serviceName(i), sidecarSuffix)
}

// carriedLane is the lane and reason of the first span that carries a
// lane, for a trace whose edge decision is missing: the edge sidecar's
// span when it was exported, else the first service's.
func (x *index) carriedLane() (lane, reason string) {
	for i, s := range x.spans {
		if x.isDecision(i) {
			continue
		}
		if x.enteredAtFallback(i) {
			// Nobody decided: whatever follows serves stable.
			return stable, ""
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
// killedThrough is the bound of the kill route that gave the reason, when
// its span says one.
func (x *index) ownReason(i int, service string) (reason, killedThrough string) {
	if x.parent[i] < 0 {
		for j, s := range x.spans[:i+1] {
			r, ok := x.reason[j]
			if ok && (x.serviceName(j) == service+sidecarSuffix || j == i) {
				reason, killedThrough = r, x.killedThrough[j]
			}
			if x.isDecision(j) && s.tag(wire.AttrHop) != wire.HopEdge && s.tag(wire.AttrService) == service && s.reason() != "" {
				reason, killedThrough = s.reason(), ""
			}
		}
		return reason, killedThrough
	}
	for n, a := 0, i; a >= 0 && n < maxAncestorWalk; n, a = n+1, x.parent[a] {
		if r, ok := x.reason[a]; ok {
			return r, x.killedThrough[a]
		}
		if a != i && x.served(a) != "" {
			return "", ""
		}
	}
	return "", ""
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
