package tracecheck

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// decision is an edge decision span; lane "" for nothing decided (the
// route default, stable, served).
func decision(lane string) Span {
	tags := []Tag{{wire.AttrHop, "edge"}, {wire.AttrVariant, "stable"}, {wire.AttrReason, "no-identity"}}
	if lane != "" {
		tags = []Tag{{wire.AttrHop, "edge"}, {wire.AttrVariant, lane}, {wire.AttrLane, lane}, {wire.AttrReason, "whitelist"}}
	}
	return Span{OperationName: "decide", StartTime: 1, Tags: tags}
}

// hop is a service's own span.
func hop(start int64, service, served, lane, fallback string) Span {
	return Span{OperationName: "serve " + service, StartTime: start, Tags: tags(
		wire.AttrService, service, wire.AttrVariant, served, wire.AttrLane, lane, wire.AttrFallback, fallback,
	)}
}

// tags are key, value pairs; empty values are left off, as every span
// writer does.
func tags(kv ...string) []Tag {
	var out []Tag
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, Tag{kv[i], kv[i+1]})
		}
	}
	return out
}

// legacy rewrites a trace into the names traces used before the trace
// vocabulary: decision spans "graymesh.decision" with graymesh.env
// (route-default when nothing was decided) and graymesh.reason, sidecar
// spans "ingress" tagged graymesh.reason (lane-missing, not default) and
// no variant, service spans tagged graymesh.served_env.
func legacy(t Trace) Trace {
	out := t
	out.Spans = nil
	for _, s := range t.Spans {
		get := func(key string) string { return s.tag(key) }
		decision := get(wire.AttrHop) != ""
		envoy := strings.HasSuffix(t.Processes[s.ProcessID].ServiceName, sidecarSuffix)
		ls := s
		ls.Tags = nil
		for _, tag := range s.Tags {
			switch tag.Key {
			case wire.AttrReason:
				if tag.Value == wire.ReasonDefault {
					tag.Value = "lane-missing"
				}
				ls.Tags = append(ls.Tags, Tag{legacyTagReason, tag.Value})
			case wire.AttrVariant:
				if !decision && !envoy {
					ls.Tags = append(ls.Tags, Tag{legacyTagServedEnv, tag.Value})
				}
			case wire.AttrLane:
				if decision {
					tag.Key = legacyTagEnv
				}
				ls.Tags = append(ls.Tags, tag)
			case "span.kind":
				// Outbound listeners were servers too.
				if envoy && tag.Value == "client" && strings.HasPrefix(s.OperationName, wire.SpanOutbound) {
					tag.Value = "server"
				}
				ls.Tags = append(ls.Tags, tag)
			default:
				ls.Tags = append(ls.Tags, tag)
			}
		}
		switch {
		case decision:
			ls.OperationName = legacyOpDecision
			if get(wire.AttrLane) == "" {
				ls.Tags = append(ls.Tags, Tag{legacyTagEnv, legacyRouteDefault})
			}
		case envoy && !strings.HasPrefix(s.OperationName, "async "):
			ls.OperationName = "ingress"
		}
		out.Spans = append(out.Spans, ls)
	}
	return out
}

// checkBoth checks traces as written and in the legacy names, and fails
// unless both reports agree.
func checkBoth(t *testing.T, traces ...Trace) *Report {
	t.Helper()
	var old []Trace
	for _, tr := range traces {
		old = append(old, legacy(tr))
	}
	r, rl := Check(traces), Check(old)
	if a, b := fmt.Sprintf("%+v", *r), fmt.Sprintf("%+v", *rl); a != b {
		t.Fatalf("the legacy names check differently:\nnew    %s\nlegacy %s", a, b)
	}
	return r
}

func TestCheck(t *testing.T) {
	grayChain := Trace{TraceID: "gray", Spans: []Span{
		decision("gray"),
		hop(2, "frontend", "gray", "gray", ""),
		hop(3, "orders", "gray", "gray", ""),
		hop(4, "inventory", "stable", "gray", "no-gray-version"),
		hop(5, "pricing", "gray", "gray", ""),
	}}
	stableChain := Trace{TraceID: "stable", Spans: []Span{
		decision("stable"), hop(2, "frontend", "stable", "stable", ""), hop(3, "orders", "stable", "stable", ""),
	}}
	dropped := Trace{TraceID: "dropped", Spans: []Span{
		decision("gray"),
		hop(2, "frontend", "gray", "gray", ""),
		hop(4, "inventory", "stable", "gray", "no-gray-version"),
		hop(5, "pricing", "stable", "stable", ""), // lane lost: a leak
	}}
	unexplained := Trace{TraceID: "unexplained", Spans: []Span{
		decision("gray"), hop(2, "orders", "stable", "gray", ""),
	}}
	grayInStable := Trace{TraceID: "gray-in-stable", Spans: []Span{
		decision("stable"), hop(2, "orders", "gray", "gray", ""),
	}}
	undecided := Trace{TraceID: "undecided", Spans: []Span{hop(2, "orders", "gray", "gray", "")}}
	routeDefault := Trace{TraceID: "route-default", Spans: []Span{decision(""), hop(2, "orders", "stable", "stable", "")}}

	r := checkBoth(t, grayChain, stableChain, dropped, unexplained, grayInStable, undecided, routeDefault)
	if r.TracesSeen != 7 || r.TracesChecked != 7 || r.Undecided != 1 {
		t.Fatalf("seen %d checked %d undecided %d", r.TracesSeen, r.TracesChecked, r.Undecided)
	}
	if r.HopsChecked != 4+2+3+1+1+1+1 || r.Leaks != 3 || r.Fallbacks != 2 {
		t.Fatalf("hops %d leaks %d fallbacks %d", r.HopsChecked, r.Leaks, r.Fallbacks)
	}
	leaking := map[string]bool{}
	for _, tr := range r.LeakingTraces(10) {
		leaking[tr.TraceID] = true
	}
	for id, want := range map[string]bool{"gray": false, "stable": false, "dropped": true, "unexplained": true, "gray-in-stable": true, "route-default": false, "undecided": false} {
		if leaking[id] != want {
			t.Errorf("trace %s leaking=%v, want %v", id, leaking[id], want)
		}
	}
	if got := r.Traces[0].Hops; len(got) != 4 || got[2].Service != "inventory" || got[2].Fallback == "" {
		t.Fatalf("hops not in call order: %+v", got)
	}
}

// builder makes traces shaped like the mesh's (as Jaeger returns one from
// the e2e mesh), in the trace vocabulary: per hop, the sidecar's inbound
// server span (variant from the endpoint that served, reason from
// graymesh, lane and fallback from its headers, upstream_cluster
// "svc|env"), its ext_proc call, graymesh's gRPC server span and decision
// span under it, the service's own span, and the sidecar's outbound
// client span (upstream_cluster "inbound|next") towards the next hop.
type builder struct {
	t     Trace
	clock int64
	// tree false leaves out every reference: the check must fall back to
	// start order.
	tree bool
}

func newBuilder(id string, tree bool) *builder {
	return &builder{t: Trace{TraceID: id, Processes: map[string]Process{}}, tree: tree}
}

func (b *builder) span(parent, process, op string, tags ...Tag) string {
	b.clock += 10
	id := fmt.Sprintf("s%d", len(b.t.Spans)+1)
	b.t.Processes[process] = Process{ServiceName: process}
	s := Span{SpanID: id, OperationName: op, StartTime: b.clock, Tags: tags, ProcessID: process}
	if parent != "" && b.tree {
		s.References = []Reference{{RefType: "CHILD_OF", SpanID: parent}}
	}
	b.t.Spans = append(b.t.Spans, s)
	return id
}

// hopSpec is one hop as the sidecar and the service saw it.
type hopSpec struct {
	service string
	// decision is graymesh's decision span for this hop: "" for none
	// (graymesh down or its spans lost), else env/reason.
	env, reason string
	// headers graymesh set: the lane and fallback; noReasonTag leaves
	// the reason off the sidecar span (a sidecar without tracing tags).
	lane, fallback string
	noReasonTag    bool
	noDecision     bool
	// served is the environment that served; cluster the sidecar's
	// upstream cluster env (served when empty).
	served, cluster string
	// noServiceSpan: the service reports no span of its own.
	noServiceSpan bool
	// version: at the edge, the version its decision span says it
	// decided under; at an inner hop, the bound its sidecar's kill route
	// says.
	version string
}

// chain builds a call chain, each hop called by the previous service.
func (b *builder) chain(edge bool, hops ...hopSpec) *builder {
	parent := ""
	for i, h := range hops {
		cluster := h.cluster
		if cluster == "" {
			cluster = h.served
		}
		reason := h.reason
		if h.noReasonTag {
			reason = ""
		}
		innerVersion := h.version
		if i == 0 && edge {
			innerVersion = ""
		}
		inTags := append([]Tag{{"span.kind", "server"}}, tags(wire.AttrVariant, cluster, wire.AttrReason, reason,
			wire.AttrLane, h.lane, wire.AttrFallback, h.fallback, "upstream_cluster", h.service+"|"+cluster, wire.AttrVersion, innerVersion)...)
		inbound := b.span(parent, h.service+"-sidecar", "inbound "+h.service, inTags...)
		if !h.noDecision && h.reason != "" {
			call := b.span(inbound, h.service+"-sidecar", "async envoy.service.ext_proc.v3.ExternalProcessor.Process egress", Tag{"span.kind", "client"})
			hopName, op := wire.HopInner, "follow-lane "+h.service
			if i == 0 && edge {
				hopName, op = wire.HopEdge, "decide "+h.service
			}
			lane := h.env
			if lane == "" {
				lane = h.lane
			}
			variant := lane
			if h.fallback != "" {
				variant = "stable"
			}
			// graymesh's gRPC server span sits between the sidecar's
			// call and the decision, as otelgrpc reports it.
			grpc := b.span(call, "graymesh", "envoy.service.ext_proc.v3.ExternalProcessor/Process", Tag{"span.kind", "server"})
			b.span(grpc, "graymesh", op, tags(wire.AttrHop, hopName, wire.AttrService, h.service,
				wire.AttrVariant, variant, wire.AttrLane, lane, wire.AttrReason, h.reason, wire.AttrFallback, h.fallback, wire.AttrVersion, h.version)...)
		}
		parent = inbound
		if !h.noServiceSpan {
			parent = b.span(inbound, h.service, "serve "+h.service+" "+h.served, append([]Tag{{"span.kind", "server"}},
				tags(wire.AttrService, h.service, wire.AttrVariant, h.served, wire.AttrLane, h.lane, wire.AttrFallback, h.fallback)...)...)
		}
		if i+1 < len(hops) {
			next := hops[i+1].service
			call := b.span(parent, h.service, "call "+next, Tag{"span.kind", "client"})
			parent = b.span(call, h.service+"-sidecar", "outbound "+h.service+"->"+next, Tag{"span.kind", "client"}, Tag{"upstream_cluster", "inbound|" + next})
		}
	}
	return b
}

func (b *builder) trace() Trace { return b.t }

// grayChain is the healthy four-hop chain of the mesh demo for a gray
// request: inventory has no gray version.
func grayChain() []hopSpec {
	return []hopSpec{
		{service: "frontend", reason: "whitelist", lane: "gray", served: "gray"},
		{service: "orders", reason: "lane", lane: "gray", served: "gray"},
		{service: "inventory", reason: "lane", lane: "gray", fallback: "no-gray-version", served: "stable"},
		{service: "pricing", reason: "lane", lane: "gray", served: "gray"},
	}
}

// killedAtOrders: the release is killed while the request is at
// frontend; orders finds it killed (stable, the lane dropped), the hops
// after it see no lane.
func killedAtOrders() []hopSpec {
	return []hopSpec{
		{service: "frontend", reason: "whitelist", lane: "gray", served: "gray"},
		{service: "orders", reason: "killed", lane: "stable", served: "stable"},
		{service: "inventory", reason: wire.ReasonDefault, lane: "stable", served: "stable"},
		{service: "pricing", reason: wire.ReasonDefault, lane: "stable", served: "stable"},
	}
}

// native is a chain whose inner hops verified the lane in Envoy: only the
// edge asked graymesh, each inner sidecar's span says its route's reason.
func native(in []hopSpec) []hopSpec {
	hops := append([]hopSpec(nil), in...)
	for i := range hops[1:] {
		hops[i+1].noDecision = true
	}
	return hops
}

func withoutDecisions(in []hopSpec) []hopSpec {
	hops := append([]hopSpec(nil), in...)
	for i := range hops {
		hops[i].noDecision = true
	}
	return hops
}

// categories is what a report says of a trace, in the terms the tests
// compare.
type categories struct {
	checked, undecided, unchecked, hops, leaks, switches, splits, fallbacks int
	lane, switchAt, splitAt                                                 string
	leakAt                                                                  []string
}

func categoriesOf(r *Report) categories {
	got := categories{checked: r.TracesChecked, undecided: r.Undecided, unchecked: r.Unchecked, hops: r.HopsChecked, leaks: r.Leaks,
		switches: r.Switches, splits: r.LaggingSplits, fallbacks: r.Fallbacks}
	if len(r.Traces) == 1 {
		got.lane, got.switchAt, got.splitAt = r.Traces[0].Lane, r.Traces[0].Switch, r.Traces[0].Split
		for _, h := range r.Traces[0].Hops {
			if h.Leak {
				got.leakAt = append(got.leakAt, h.Service)
			}
		}
	}
	return got
}

func TestCheckCategories(t *testing.T) {
	type want = categories
	stableDown := []hopSpec{ // graymesh down everywhere: no headers, route defaults
		{service: "frontend", served: "stable"}, {service: "orders", served: "stable"},
		{service: "inventory", served: "stable"}, {service: "pricing", served: "stable"},
	}
	downWithGrayHop := []hopSpec{
		{service: "frontend", served: "stable"}, {service: "orders", served: "gray"},
	}
	lostAfterDecision := grayChain()
	lostAfterDecision[3] = hopSpec{service: "pricing", reason: wire.ReasonDefault, lane: "stable", served: "stable"}
	killedThenGray := killedAtOrders()
	killedThenGray[3] = hopSpec{service: "pricing", reason: "lane", lane: "gray", served: "gray"}
	uninstrumented := grayChain()
	uninstrumented[1].noServiceSpan = true
	uninstrumentedWrong := grayChain()
	uninstrumentedWrong[1].noServiceSpan = true
	uninstrumentedWrong[1].served = "stable"
	refusedAtPricing := grayChain()
	refusedAtPricing[3] = hopSpec{service: "pricing", reason: wire.ReasonLaneRefused, lane: "stable", served: "stable"}
	killedSidecarOnly := killedAtOrders()
	for i := range killedSidecarOnly {
		killedSidecarOnly[i].noReasonTag = true
	}
	// The edge decided under fleet version 3; orders' kill stops lanes
	// through version 2 (its node had not applied the revive) or 3 (a
	// kill in force where the edge's version is).
	killedBehind, killedAtVersion := native(killedAtOrders()), native(killedAtOrders())
	killedBehind[0].version, killedBehind[1].version = "3", "2"
	killedAtVersion[0].version, killedAtVersion[1].version = "3", "3"

	for name, c := range map[string]struct {
		trace Trace
		want  want
	}{
		"decided gray chain": {newBuilder("t", true).chain(true, grayChain()...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, lane: "gray"}},
		"undecided, graymesh down: all stable": {newBuilder("t", true).chain(false, stableDown...).trace(),
			want{checked: 1, undecided: 1, hops: 4, lane: "stable"}},
		"undecided, graymesh down: a hop served gray": {newBuilder("t", true).chain(false, downWithGrayHop...).trace(),
			want{checked: 1, undecided: 1, hops: 2, leaks: 1, lane: "stable", leakAt: []string{"orders"}}},
		"undecided, decision spans lost: lane carried by the sidecars": {newBuilder("t", true).chain(false, withoutDecisions(grayChain())...).trace(),
			want{checked: 1, undecided: 1, hops: 4, fallbacks: 1, lane: "gray"}},
		"undecided, decision spans lost: lane dropped": {newBuilder("t", true).chain(false, withoutDecisions(lostAfterDecision)...).trace(),
			want{checked: 1, undecided: 1, hops: 4, fallbacks: 1, leaks: 1, lane: "gray", leakAt: []string{"pricing"}}},
		"killed mid-flight: explained switch": {newBuilder("t", true).chain(true, killedAtOrders()...).trace(),
			want{checked: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"killed mid-flight, reason only in graymesh's decision span": {newBuilder("t", true).chain(true, killedSidecarOnly...).trace(),
			want{checked: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"killed mid-flight, no span references: start order": {newBuilder("t", false).chain(true, killedAtOrders()...).trace(),
			want{checked: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"killed mid-flight, decision span lost": {newBuilder("t", true).chain(false, withoutDecisions(killedAtOrders())...).trace(),
			want{checked: 1, undecided: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"lane lost without a kill: leaks": {newBuilder("t", true).chain(true, lostAfterDecision...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, leaks: 1, lane: "gray", leakAt: []string{"pricing"}}},
		"gray again after the kill: leak": {newBuilder("t", true).chain(true, killedThenGray...).trace(),
			want{checked: 1, hops: 4, switches: 1, leaks: 1, lane: "gray", switchAt: "orders", leakAt: []string{"pricing"}}},
		"service without its own span: hop from its sidecar": {newBuilder("t", true).chain(true, uninstrumented...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, lane: "gray"}},
		"service without its own span, sidecar routed to stable: leak": {newBuilder("t", true).chain(true, uninstrumentedWrong...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, leaks: 1, lane: "gray", leakAt: []string{"orders"}}},
		"inner hops verified in Envoy": {newBuilder("t", true).chain(true, native(grayChain())...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, lane: "gray"}},
		"inner hops verified in Envoy, killed at orders": {newBuilder("t", true).chain(true, native(killedAtOrders())...).trace(),
			want{checked: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"killed at a node behind the edge's version: lagging-node split, not a kill": {newBuilder("t", true).chain(true, killedBehind...).trace(),
			want{checked: 1, hops: 4, splits: 1, lane: "gray", splitAt: "orders"}},
		"killed at a node behind the edge's version, no span references": {newBuilder("t", false).chain(true, killedBehind...).trace(),
			want{checked: 1, hops: 4, splits: 1, lane: "gray", splitAt: "orders"}},
		"killed at a node at the edge's version: a kill": {newBuilder("t", true).chain(true, killedAtVersion...).trace(),
			want{checked: 1, hops: 4, switches: 1, lane: "gray", switchAt: "orders"}},
		"inner hops verified in Envoy, lane refused at pricing: leak": {newBuilder("t", true).chain(true, native(refusedAtPricing)...).trace(),
			want{checked: 1, hops: 4, fallbacks: 1, leaks: 1, lane: "gray", leakAt: []string{"pricing"}}},
		"nothing to check": {Trace{TraceID: "t", Spans: []Span{{SpanID: "a", OperationName: "GET /", ProcessID: "p"}}, Processes: map[string]Process{"p": {ServiceName: "frontend"}}},
			want{unchecked: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			r := checkBoth(t, c.trace)
			if got := categoriesOf(r); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got  %+v\nwant %+v\n%+v", got, c.want, r.Traces)
			}
		})
	}
}

func TestKillInAnotherBranchExplainsNothing(t *testing.T) {
	// frontend calls orders and payments; orders finds the release
	// killed, payments serves stable with no kill on its path: a leak.
	b := newBuilder("t", true)
	in := b.span("", "frontend-sidecar", "inbound frontend", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"}, Tag{wire.AttrReason, "whitelist"}, Tag{"upstream_cluster", "frontend|gray"})
	call := b.span(in, "frontend-sidecar", "ext_proc", Tag{"span.kind", "client"})
	b.span(call, "graymesh", "decide frontend", Tag{wire.AttrHop, "edge"}, Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"}, Tag{wire.AttrReason, "whitelist"})
	fe := b.span(in, "frontend", "serve frontend gray", Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"})
	o := b.span(fe, "orders-sidecar", "inbound orders", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "stable"}, Tag{wire.AttrReason, "killed"})
	b.span(o, "orders", "serve orders stable", Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "stable"})
	p := b.span(fe, "payments-sidecar", "inbound payments", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"}, Tag{wire.AttrReason, "lane"})
	b.span(p, "payments", "serve payments stable", Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"})
	r := checkBoth(t, b.trace())
	if r.Leaks != 1 || r.Switches != 1 {
		t.Fatalf("leaks %d switches %d: %+v", r.Leaks, r.Switches, r.Traces)
	}
	for _, h := range r.Traces[0].Hops {
		if h.Leak != (h.Service == "payments") || h.Switch != (h.Service == "orders") {
			t.Fatalf("hop %+v", h)
		}
	}
}

func TestSidecarHopUsesTheFallbackListenersSpan(t *testing.T) {
	// pricing reports no span; its gray version is down, so its inbound
	// span names pricing|gray and the fallback listener's span under it
	// pricing|stable, marked.
	b := newBuilder("t", true)
	in := b.span("", "frontend-sidecar", "inbound frontend", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"}, Tag{"upstream_cluster", "frontend|gray"})
	call := b.span(in, "frontend-sidecar", "ext_proc", Tag{"span.kind", "client"})
	b.span(call, "graymesh", "decide frontend", Tag{wire.AttrHop, "edge"}, Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"}, Tag{wire.AttrReason, "whitelist"})
	fe := b.span(in, "frontend", "serve frontend gray", Tag{wire.AttrVariant, "gray"}, Tag{wire.AttrLane, "gray"})
	p := b.span(fe, "pricing-sidecar", "inbound pricing", Tag{"span.kind", "server"}, Tag{wire.AttrLane, "gray"}, Tag{"upstream_cluster", "pricing|gray"})
	b.span(p, "pricing-sidecar", "fallback pricing", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"}, Tag{wire.AttrFallback, "gray-unavailable"}, Tag{"upstream_cluster", "pricing|stable"})
	// An outbound span names a peer's inbound cluster, not an environment.
	b.span(fe, "frontend-sidecar", "outbound frontend->pricing", Tag{"span.kind", "client"}, Tag{"upstream_cluster", "inbound|pricing"})
	r := checkBoth(t, b.trace())
	hops := r.Traces[0].Hops
	if r.Leaks != 0 || len(hops) != 2 || hops[1].Served != "stable" || hops[1].Fallback != "gray-unavailable" || hops[1].From != "sidecar" {
		t.Fatalf("leaks %d hops %+v", r.Leaks, hops)
	}
}

func TestSidecarHopReadsTheServingEndpointsVariant(t *testing.T) {
	// pricing reports no span and its fallback listener's span was lost:
	// the inbound span names the gray cluster, but the endpoint that
	// served (the fallback listener) says stable, and why.
	b := newBuilder("t", true).chain(true, hopSpec{service: "frontend", reason: "whitelist", lane: "gray", served: "gray"})
	b.span("s5", "pricing-sidecar", "inbound pricing", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"},
		Tag{wire.AttrReason, "lane"}, Tag{wire.AttrFallback, "gray-unavailable"}, Tag{"upstream_cluster", "pricing|gray"})
	r := Check([]Trace{b.trace()})
	hops := r.Traces[0].Hops
	if r.Leaks != 0 || len(hops) != 2 || hops[1].Served != "stable" || hops[1].Fallback != "gray-unavailable" || r.Fallbacks != 1 {
		t.Fatalf("leaks %d hops %+v", r.Leaks, hops)
	}
}

func TestParse(t *testing.T) {
	traces, err := Parse([]byte(`{"data":[{"traceID":"t1","spans":[{"spanID":"s","operationName":"x","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"p"}],"startTime":5,"tags":[{"key":"graymesh.served_env","type":"string","value":"gray"}],"processID":"p1"}],"processes":{"p1":{"serviceName":"orders"}}}]}`))
	if err != nil || len(traces) != 1 || traces[0].Processes["p1"].ServiceName != "orders" || traces[0].Spans[0].tag("graymesh.served_env") != "gray" || traces[0].Spans[0].References[0].SpanID != "p" {
		t.Fatalf("%v %+v", err, traces)
	}
	if _, err := Parse([]byte("<html>")); err == nil {
		t.Fatal("garbage accepted")
	}
}

// failOpen is a gray chain whose edge decision came too late: Envoy's
// ext_proc message timeout expired, the filter failed open, the edge
// sidecar's span says "error" and no lane, and every hop served stable;
// graymesh's decision span, finished later, still says gray.
func failOpen() []hopSpec {
	return []hopSpec{
		{service: "frontend", env: "gray", reason: "whitelist", lane: "stable", served: "stable"},
		{service: "orders", reason: wire.ReasonDefault, lane: "stable", served: "stable", noDecision: true},
		{service: "pricing", reason: wire.ReasonDefault, lane: "stable", served: "stable", noDecision: true},
	}
}

func TestFailOpenIsNotALeak(t *testing.T) {
	hops := failOpen()
	b := newBuilder("t", true).chain(true, hops...)
	// The edge sidecar's span: the reason tag's default, since graymesh's
	// dynamic metadata never arrived.
	for i, tag := range b.t.Spans[0].Tags {
		if tag.Key == wire.AttrReason {
			b.t.Spans[0].Tags[i].Value = wire.ReasonError
		}
	}
	r := Check([]Trace{b.trace()})
	if r.Leaks != 0 || r.LeakingChains != 0 || r.FailOpens != 1 || len(r.FailOpenTraces(5)) != 1 {
		t.Fatalf("leaks %d, leaking chains %d, fail-opens %d: %+v", r.Leaks, r.LeakingChains, r.FailOpens, r.Traces)
	}
	if tr := r.Traces[0]; !tr.Decided || tr.Lane != "stable" || tr.DecidedLane != "gray" {
		t.Fatalf("trace %+v", tr)
	}

	// Traces recorded without the "error" default: the edge sidecar's span
	// has no reason of graymesh's and the route default's lane.
	hops[0].noReasonTag = true
	b = newBuilder("t", true).chain(true, hops...)
	if r := checkBoth(t, b.trace()); r.Leaks != 0 || r.FailOpens != 1 {
		t.Fatalf("without the error reason: leaks %d, fail-opens %d: %+v", r.Leaks, r.FailOpens, r.Traces)
	}

	// A fail-open chain that then serves gray somewhere still leaks.
	grayAfter := failOpen()
	grayAfter[0].noReasonTag = true
	grayAfter[2] = hopSpec{service: "pricing", reason: "lane", lane: "gray", served: "gray", noDecision: true}
	if r := Check([]Trace{newBuilder("t", true).chain(true, grayAfter...).trace()}); r.Leaks != 1 || r.FailOpens != 1 {
		t.Fatalf("gray after a fail-open: leaks %d, fail-opens %d", r.Leaks, r.FailOpens)
	}
	// A decision that took effect is no fail-open.
	if r := checkBoth(t, newBuilder("t", true).chain(true, grayChain()...).trace()); r.FailOpens != 0 {
		t.Fatalf("a healthy chain counted as a fail-open: %+v", r.Traces)
	}
}

// TestCallerAtTheFallbackListenerIsNoLane: a caller that reaches a
// service's fallback listener directly chooses the x-gray-env its span
// carries; nobody decided, so the hops after it serving stable are not
// leaks.
func TestCallerAtTheFallbackListenerIsNoLane(t *testing.T) {
	b := newBuilder("t", true)
	fb := b.span("caller-span", "orders-sidecar", "fallback orders", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"},
		Tag{wire.AttrFallback, "gray-unavailable"}, Tag{"upstream_cluster", "orders|stable"})
	o := b.span(fb, "orders", "serve orders stable", Tag{"span.kind", "server"}, Tag{wire.AttrService, "orders"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrLane, "gray"})
	p := b.span(o, "pricing-sidecar", "inbound pricing", Tag{"span.kind", "server"}, Tag{wire.AttrVariant, "stable"}, Tag{wire.AttrReason, wire.ReasonDefault}, Tag{"upstream_cluster", "pricing|stable"})
	b.span(p, "pricing", "serve pricing stable", Tag{"span.kind", "server"}, Tag{wire.AttrService, "pricing"}, Tag{wire.AttrVariant, "stable"})
	r := Check([]Trace{b.trace()})
	if r.Leaks != 0 || r.Undecided != 1 || r.Traces[0].Lane != "stable" {
		t.Fatalf("leaks %d undecided %d: %+v", r.Leaks, r.Undecided, r.Traces)
	}
}

func TestYoungTracesArePendingAndLeaksCountPerChain(t *testing.T) {
	lost := grayChain()
	lost[1] = hopSpec{service: "orders", reason: wire.ReasonDefault, lane: "stable", served: "stable", noDecision: true}
	lost[3] = hopSpec{service: "pricing", reason: wire.ReasonDefault, lane: "stable", served: "stable", noDecision: true}
	old := newBuilder("old", true).chain(true, lost...).trace()
	young := newBuilder("young", true).chain(true, lost...).trace()
	now := time.UnixMicro(1_000_000_000)
	for i := range old.Spans {
		old.Spans[i].StartTime += now.Add(-time.Minute).UnixMicro()
		young.Spans[i].StartTime += now.Add(-time.Second).UnixMicro()
	}
	r := CheckSettled([]Trace{old, young}, now, 10*time.Second)
	if r.Pending != 1 || r.TracesChecked != 1 || r.Traces[0].TraceID != "old" {
		t.Fatalf("pending %d checked %d: %+v", r.Pending, r.TracesChecked, r.Traces)
	}
	if r.Leaks < 2 || r.LeakingChains != 1 {
		t.Fatalf("leaks %d (hops), leaking chains %d", r.Leaks, r.LeakingChains)
	}
}

// TestEnvoySplitIsNotUndecided: a chain Envoy's edge split itself has no
// decision span; its edge sidecar's span says traffic-envoy and the lane,
// so the chain is checked against that lane and counted as native, not
// undecided. One that left the lane still leaks.
func TestEnvoySplitIsNotUndecided(t *testing.T) {
	split := withoutDecisions(grayChain())
	split[0].reason = wire.ReasonTrafficEnvoy
	leaking := append([]hopSpec(nil), split...)
	leaking[3] = hopSpec{service: "pricing", reason: wire.ReasonDefault, lane: "stable", served: "stable", noDecision: true}
	r := Check([]Trace{newBuilder("a", true).chain(true, split...).trace(), newBuilder("b", true).chain(true, leaking...).trace()})
	if r.Native != 2 || r.Undecided != 0 || r.TracesChecked != 2 || r.Leaks != 1 {
		t.Fatalf("native %d, undecided %d, checked %d, leaks %d; want 2, 0, 2, 1", r.Native, r.Undecided, r.TracesChecked, r.Leaks)
	}
	if tr := r.Traces[0]; !tr.Native || tr.Decided || tr.Lane != "gray" || tr.Reason != wire.ReasonTrafficEnvoy {
		t.Fatalf("trace %+v", tr)
	}
	if u := r.UndecidedTraces(10); len(u) != 0 {
		t.Fatalf("undecided traces %v", u)
	}
}
