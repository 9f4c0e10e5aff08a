// Command demo-service is the demo upstream: one version of one service. It
// answers JSON naming the service, environment and version that served the
// request and the graymesh headers it received, and, with --calls, calls the
// next services through its sidecar's outbound listener and includes their
// answers, so one curl shows a whole call chain. It is instrumented with
// OpenTelemetry (otelhttp), so trace context, baggage and — with
// laneprop's propagator — graymesh's lane cross it without code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/laneprop"
)

type reply struct {
	Service string            `json:"service"`
	Env     string            `json:"env"`
	Version string            `json:"version"`
	Path    string            `json:"path"`
	Gray    map[string]string `json:"graymesh_headers"`
	Calls   []json.RawMessage `json:"calls,omitempty"`
	Errors  []string          `json:"errors,omitempty"`
}

type options struct {
	service, env, version string
	calls                 []string
	outbound              string
	dropLane              bool
	publisher             *publisher
}

func main() {
	fs := flag.NewFlagSet("demo-service", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo-service --listen ADDR --service NAME --env ENV --version V [--calls a,b --outbound ADDR]\n\nA demo upstream that reports who served each request, and calls the next services.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:9101", "address to serve on")
	var o options
	fs.StringVar(&o.service, "service", "shop", "service name to report")
	fs.StringVar(&o.env, "env", "stable", "environment to report")
	fs.StringVar(&o.version, "version", "v1", "version to report")
	calls := fs.String("calls", "", "comma-separated services to call for every request")
	fs.StringVar(&o.outbound, "outbound", "", "host:port of the sidecar's outbound listener (required with --calls)")
	otlp := fs.String("otlp", "", "OTLP gRPC endpoint to export spans to (empty: no export)")
	fs.BoolVar(&o.dropLane, "drop-lane", false, "negative control: call the next services WITHOUT the incoming lane (and baggage), as a badly behaved service would")
	var fc faultConfig
	fs.Float64Var(&fc.errorRate, "error-rate", 0, "fault injection: answer this share of requests (0–1) with 500; the same and the flags below also as POST /fault?error_rate=R&latency=D&spread=S&path=P&path_error_rate=R&slow_share=S&slow_delay=D")
	fs.DurationVar(&fc.latency, "add-latency", 0, "fault injection: delay every request by this much")
	fs.StringVar(&fc.spread, "fault-spread", spreadEven, "fault injection: how requests are picked for a share: even (exactly every 1/share-th) or random (each independently, as a real regression)")
	fs.StringVar(&fc.pathPrefix, "error-path", "", "fault injection: a path prefix whose requests fail at --error-path-rate, on top of --error-rate")
	fs.Float64Var(&fc.pathErrorRate, "error-path-rate", 0, "fault injection: answer this share (0–1) of --error-path's requests with 500")
	fs.Float64Var(&fc.slowShare, "slow-share", 0, "fault injection: delay this share of requests (0–1) by --slow-delay on top of --add-latency: a slow tail")
	fs.DurationVar(&fc.slowDelay, "slow-delay", 0, "fault injection: the slow tail's extra delay")
	seed := fs.Uint64("fault-seed", 0, "fault injection: seed of the random spread (0: from the clock)")
	var qf queueFlags
	qf.register(fs)
	_ = fs.Parse(os.Args[1:])
	if err := qf.check(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-service:", err)
		os.Exit(2)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	faults := newFault(*seed)
	if err := faults.set(fc); err != nil {
		fmt.Fprintln(os.Stderr, "demo-service:", err)
		os.Exit(2)
	}
	if *calls != "" {
		o.calls = strings.Split(*calls, ",")
		if o.outbound == "" {
			fmt.Fprintln(os.Stderr, "demo-service: --calls needs --outbound")
			os.Exit(2)
		}
	}

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", o.service, "env", o.env)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := setupTracing(ctx, *otlp, o)
	if err != nil {
		log.Error("tracing", "error", err)
		os.Exit(1)
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "call " + r.Host }))}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	// Spans named for what they are: "serve frontend gray" for a request
	// this version serves, "call orders" for a call to the next service.
	mux.HandleFunc("/fault", faults.handle)
	var consumerDone <-chan struct{}
	if o.publisher, consumerDone, err = startQueues(ctx, qf, o, mux, log); err != nil {
		log.Error("kafka", "error", err)
		os.Exit(1)
	}
	mux.Handle("/", otelhttp.NewHandler(faults.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, o, client)
	})), o.service, otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return "serve " + o.service + " " + o.env })))
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving", "listen", *listen, "version", o.version, "calls", o.calls, "fault", faults.settings(), "fault_seed", *seed)
	if err := serveUntil(ctx, srv, consumerDone, shutdownTracing); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

// serveUntil serves srv until ctx ends, then shuts it down, waits for the
// consumer (if any) to leave its group and flushes the spans.
func serveUntil(ctx context.Context, srv *http.Server, consumerDone <-chan struct{}, shutdownTracing func(context.Context) error) error {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		// A consumer leaves its group before the process ends: stable
		// takes over gray's records at once, not after the broker's
		// session timeout (45 s) expires the member.
		select {
		case <-consumerDone:
		case <-shutdown.Done():
		}
		_ = shutdownTracing(shutdown)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-finished
	return nil
}

func serve(w http.ResponseWriter, r *http.Request, o options, client *http.Client) {
	out := reply{Service: o.service, Env: o.env, Version: o.version, Path: r.URL.Path, Gray: map[string]string{}}
	for k, v := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, wire.HeaderPrefix) {
			out.Gray[lk] = strings.Join(v, ",")
		}
	}
	// What served this hop, in the trace vocabulary, for the trace
	// checker: this service's environment, the lane the request travels
	// in and, when the two differ, why. Empty ones are left off.
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(
		attribute.String(wire.AttrService, o.service),
		attribute.String(wire.AttrVariant, o.env),
	)
	// A stress-test request says so (x-gray-stress): a real service would
	// write its data to shadow tables; the demo marks its span and echoes
	// the header in its reply (Gray).
	for _, a := range [][2]string{{wire.AttrLane, wire.HeaderEnv}, {wire.AttrFallback, wire.HeaderFallback}, {wire.AttrStress, wire.HeaderStress}} {
		if v := r.Header.Get(a[1]); v != "" {
			span.SetAttributes(attribute.String(a[0], v))
		}
	}
	ctx := r.Context()
	if o.dropLane {
		ctx = laneprop.Without(baggage.ContextWithoutBaggage(ctx))
	}
	for _, next := range o.calls {
		body, err := call(ctx, client, o.outbound, next, r.URL.Path)
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("%s: %v", next, err))
			continue
		}
		out.Calls = append(out.Calls, body)
	}
	if o.publisher != nil {
		if err := o.publisher.publish(ctx, event{Service: o.service, Env: o.env, Path: r.URL.Path}); err != nil {
			out.Errors = append(out.Errors, "publish: "+err.Error())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", o.service+"/"+o.env+"/"+o.version)
	// The environment that served this hop, for a load test's report
	// (graymesh loadtest counts responses by it).
	w.Header().Set(wire.HeaderEnv, o.env)
	if len(out.Errors) > 0 {
		w.WriteHeader(http.StatusBadGateway)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// call sends GET path to service through the sidecar's outbound listener;
// the Host header names the service.
func call(ctx context.Context, client *http.Client, outbound, service, path string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+outbound+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = service
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.RawMessage(body), nil
}

func setupTracing(ctx context.Context, endpoint string, o options) (func(context.Context) error, error) {
	// The lane travels in its own header; laneprop's propagator carries it
	// from the request this service serves to the calls it makes.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}, laneprop.Propagator{}))
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName(o.service),
			semconv.ServiceVersion(o.version),
			attribute.String("deployment.environment.name", o.env),
		)),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}
