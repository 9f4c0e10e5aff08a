package extproc

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/graymesh/graymesh/gray"
)

// trace records the decision as a span, a child of the span Envoy opened
// for this ext_proc call (its context arrives in the gRPC metadata). Names
// follow OpenTelemetry's feature_flag conventions where they fit.
func (s *Server) trace(ctx context.Context, p *gray.Policy, h gray.Hop, o *gray.Outcome) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	_, span := s.tracer.Start(ctx, "graymesh.decision", trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	env := o.Env
	if env == "" {
		env = "route-default"
	}
	span.SetAttributes(
		attribute.String("feature_flag.key", "graymesh.env"),
		attribute.String("feature_flag.provider.name", "graymesh"),
		attribute.String("feature_flag.result.variant", env),
		attribute.String("feature_flag.result.reason", string(o.Reason)),
		attribute.String("feature_flag.version", o.Version),
		attribute.String("graymesh.hop", h.Name()),
		attribute.String("graymesh.service", h.Service),
		attribute.String("graymesh.env", env),
		attribute.String("graymesh.release", o.Release),
		attribute.String("graymesh.rule", o.Rule),
		attribute.String("graymesh.reason", string(o.Reason)),
		attribute.Int("graymesh.bucket", o.Bucket),
		attribute.String("graymesh.config_version", o.Version),
		attribute.String("graymesh.fallback", o.Fallback),
	)
	if o.Caller.Problem != "" {
		span.SetAttributes(attribute.String("graymesh.token_problem", o.Caller.Problem))
	}
	if o.Caller.Subject != "" {
		span.SetAttributes(attribute.String("graymesh.subject_hash", p.SubjectHash(o.Caller.Subject)))
	}
}
