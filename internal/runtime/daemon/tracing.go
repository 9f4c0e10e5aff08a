package daemon

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// spanBatchTimeout bounds how long a decision span waits before export, so
// a trace is complete in Jaeger within a couple of seconds.
const spanBatchTimeout = time.Second

// startTracing exports graymesh's spans over OTLP gRPC to endpoint and
// installs W3C trace-context and baggage propagation. The returned func
// flushes and stops the exporter.
func startTracing(ctx context.Context, endpoint, version string) (func(context.Context) error, error) {
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("graymesh"),
		semconv.ServiceVersion(version),
	)
	tp := sdktrace.NewTracerProvider(
		// Envoy decides sampling; follow the parent's flag.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(spanBatchTimeout)),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}
