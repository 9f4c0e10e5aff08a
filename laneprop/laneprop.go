// Package laneprop carries graymesh's lane through a service instrumented
// with OpenTelemetry. The lane travels in its own header (x-graymesh-lane),
// which OpenTelemetry's W3C propagators do not know; add Propagator to the
// service's composite propagator and the lane an incoming request brought
// leaves with every outgoing call made under its context, as trace context
// and baggage do, without code at each call:
//
//	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
//		propagation.TraceContext{}, propagation.Baggage{}, laneprop.Propagator{}))
//
// The service never reads or checks the lane: its sidecar's Envoy verified
// it on the way in, and the next sidecar verifies it again.
package laneprop

import (
	"context"

	"go.opentelemetry.io/otel/propagation"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Propagator extracts the lane header into a context and injects it into
// outgoing requests.
type Propagator struct{}

var _ propagation.TextMapPropagator = Propagator{}

type contextKey struct{}

// Inject sets the lane header from ctx, if ctx carries a lane.
func (Propagator) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	if lane := FromContext(ctx); lane != "" {
		carrier.Set(wire.HeaderLane, lane)
	}
}

// Extract returns ctx carrying the carrier's lane header, if it has one.
func (Propagator) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	if lane := carrier.Get(wire.HeaderLane); lane != "" {
		return ContextWith(ctx, lane)
	}
	return ctx
}

// Fields names the header the propagator sets.
func (Propagator) Fields() []string { return []string{wire.HeaderLane} }

// ContextWith returns ctx carrying lane.
func ContextWith(ctx context.Context, lane string) context.Context {
	return context.WithValue(ctx, contextKey{}, lane)
}

// FromContext returns the lane ctx carries ("" when none).
func FromContext(ctx context.Context) string {
	lane, _ := ctx.Value(contextKey{}).(string)
	return lane
}

// Without returns ctx carrying no lane: calls made under it leave without
// one, and their chains serve stable.
func Without(ctx context.Context) context.Context {
	return context.WithValue(ctx, contextKey{}, "")
}
