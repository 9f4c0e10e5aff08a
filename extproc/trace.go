package extproc

import (
	"context"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// trace records the decision as a span, a child of the span Envoy opened
// for this ext_proc call (its context arrives in the gRPC metadata), in
// the trace vocabulary of package wire: which environment serves the hop
// and why, the lane apart when a fallback serves stable. The span is left
// in st, open until the answer is sent.
func (s *Server) trace(ctx context.Context, p *gray.Policy, h gray.Hop, o *gray.Outcome, st *streamState) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	st.endSpan()
	_, span := s.tracer.Start(ctx, decisionSpanName(h), trace.WithSpanKind(trace.SpanKindInternal))
	span.SetAttributes(decisionAttributes(p, h, o)...)
	st.span = span
}

// withEnvoyTrace makes the trace context Envoy sent for this ext_proc call
// (W3C traceparent and tracestate in the stream's gRPC metadata) the
// parent of the decision's span. A gRPC stats handler would do it by
// opening a server span of its own that lasts as long as the stream —
// for a request whose response headers graymesh asks for, the whole
// request — and make graymesh look as slow as the service.
func withEnvoyTrace(ctx context.Context) context.Context {
	parent := metadata.ValueFromIncomingContext(ctx, traceparentKey)
	if len(parent) == 0 {
		return ctx
	}
	carrier := propagation.MapCarrier{traceparentKey: parent[0]}
	if state := metadata.ValueFromIncomingContext(ctx, tracestateKey); len(state) > 0 {
		carrier[tracestateKey] = state[0]
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// The W3C trace-context headers, as gRPC metadata keys.
const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
)

// decisionSpanName is "decide <service>" at the edge and
// "follow-lane <service>" at an inner hop.
func decisionSpanName(h gray.Hop) string {
	name := wire.SpanDecide
	if h.Inner {
		name = wire.SpanFollow
	}
	if h.Service == "" {
		return name
	}
	return name + " " + h.Service
}

// decisionAttributes are the decision span's attributes; those with
// nothing to say are left off.
func decisionAttributes(p *gray.Policy, h gray.Hop, o *gray.Outcome) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 14)
	add := func(key, value string) {
		if value != "" {
			attrs = append(attrs, attribute.String(key, value))
		}
	}
	add(wire.AttrFlagKey, wire.FlagKey)
	add(wire.AttrProvider, wire.ProviderName)
	add(wire.AttrVariant, servedEnv(p.Plan, h.Service, o.Decision))
	add(wire.AttrReason, traceReason(o.Reason))
	add(wire.AttrVersion, o.Version)
	add(wire.AttrLane, o.Env)
	add(wire.AttrFallback, o.Fallback)
	add(wire.AttrHop, h.Name())
	add(wire.AttrService, h.Service)
	add(wire.AttrRelease, o.Release)
	add(wire.AttrRule, o.Rule)
	if o.Bucket != gray.NoBucket {
		attrs = append(attrs, attribute.Int(wire.AttrBucket, o.Bucket))
	}
	add(wire.AttrTokenProblem, o.Caller.Problem)
	add(wire.AttrContextID, p.SubjectHash(o.Caller.Subject))
	if o.Stress {
		add(wire.AttrStress, "1")
	}
	return attrs
}

// servedEnv is the environment that serves the hop d decided: stable at a
// fallback, the decided environment otherwise, and, when nothing was
// decided, the route default when it is one environment ("" when Envoy
// splits undecided traffic by weight: its span says which one served).
func servedEnv(pl *plan.Plan, service string, d gray.Decision) string {
	switch {
	case d.Fallback != "":
		return config.Stable
	case d.Env != "":
		return d.Env
	}
	if pl == nil {
		return ""
	}
	services := pl.Services
	if s := pl.Service(service); s != nil {
		services = []plan.Service{*s}
	}
	env := ""
	for i := range services {
		routes := services[i].Routes
		if len(routes) == 0 {
			return ""
		}
		def := routes[len(routes)-1].Backends
		if len(def) != 1 || (env != "" && def[0].Env != env) {
			return ""
		}
		env = def[0].Env
	}
	return env
}

// traceReason is a decision's reason as traces say it: an inner hop
// handed no lane is served by default, not in error.
func traceReason(r gray.Reason) string {
	if r == gray.ReasonLaneMissing {
		return wire.ReasonDefault
	}
	return string(r)
}

// withTraceMetadata hands the decision's reason, in the trace vocabulary,
// to the sidecar's span as dynamic metadata (a custom tag reads it). Only
// for traced requests: untraced ones would carry it for nothing.
func withTraceMetadata(ctx context.Context, resp *extprocsvcv3.ProcessingResponse, o *gray.Outcome) {
	if !trace.SpanContextFromContext(ctx).IsSampled() || o.Reason == "" {
		return
	}
	addMetadata(resp, wire.MetadataReason, traceReason(o.Reason))
}
