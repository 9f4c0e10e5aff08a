package extproc

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// attrs renders attributes as sorted key=value pairs.
func attrs(kvs []attribute.KeyValue) string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestDecisionAttributes(t *testing.T) {
	p := meshPolicy(t)
	// A release that splits anonymous traffic by weight, and a service
	// with its environment.
	weighted := compile(t, testConfig+"  - {name: search-canary, env: canary, traffic_percent: 10}\n"+strings.TrimPrefix(meshConfig, testConfig)+`
  - name: search
    sidecar: {inbound_port: 10003, outbound_port: 15003}
    environments: {stable: ["127.0.0.1:9204"], canary: ["127.0.0.1:9205"]}
`)
	signer, err := lane.NewSigner([]byte("mesh-key-0123456789abcdef-0123456789"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	grayLane := signer.Sign("gray", "shop-v2", p.Engine.Version(), now)
	const common = "feature_flag.key=graymesh.env feature_flag.provider.name=graymesh "
	for name, c := range map[string]struct {
		p    *gray.Policy
		req  gray.Request
		want string
	}{
		"edge, whitelisted": {p, gray.Request{Asserted: &gray.Asserted{Subject: "alice"}, Hop: gray.Hop{Service: "orders"}},
			"feature_flag.context.id=* feature_flag.result.reason=whitelist feature_flag.result.variant=gray graymesh.hop=edge graymesh.lane=gray graymesh.release=shop-v2 graymesh.rule=whitelist graymesh.service=orders"},
		"edge, whitelisted, no gray version: stable serves, the lane is gray": {p, gray.Request{Asserted: &gray.Asserted{Subject: "alice"}},
			"feature_flag.context.id=* feature_flag.result.reason=whitelist feature_flag.result.variant=stable graymesh.fallback=no-gray-version graymesh.hop=edge graymesh.lane=gray graymesh.release=shop-v2 graymesh.rule=whitelist graymesh.service=frontend"},
		"edge, anonymous: the route default serves, no lane": {p, gray.Request{},
			"feature_flag.result.reason=no-identity feature_flag.result.variant=stable graymesh.hop=edge graymesh.service=frontend"},
		"edge, anonymous, traffic split by weight: Envoy's span says which": {weighted, gray.Request{Hop: gray.Hop{Service: "search"}},
			"feature_flag.result.reason=no-identity graymesh.hop=edge graymesh.service=search"},
		"inner, handed no lane: default, not an error": {p, gray.Request{Hop: gray.Hop{Inner: true, Service: "orders"}},
			"feature_flag.result.reason=default feature_flag.result.variant=stable graymesh.hop=inner graymesh.service=orders"},
		"inner, gray lane": {p, gray.Request{Hop: gray.Hop{Inner: true, Service: "orders"}, Lane: grayLane},
			"feature_flag.result.reason=lane feature_flag.result.variant=gray graymesh.hop=inner graymesh.lane=gray graymesh.release=shop-v2 graymesh.service=orders"},
		"inner, no gray version: stable serves, the lane stays gray": {p, gray.Request{Hop: gray.Hop{Inner: true, Service: "frontend"}, Lane: grayLane},
			"feature_flag.result.reason=lane feature_flag.result.variant=stable graymesh.fallback=no-gray-version graymesh.hop=inner graymesh.lane=gray graymesh.release=shop-v2 graymesh.service=frontend"},
	} {
		t.Run(name, func(t *testing.T) {
			req := c.req
			if req.Hop.Service == "" {
				req.Hop.Service = "frontend"
			}
			req.Now = now
			o := c.p.Decide(req)
			got := attrs(decisionAttributes(c.p, req.Hop, &o))
			want := common + c.want
			if o.Version != "" {
				want += " feature_flag.version=" + o.Version
			}
			want = strings.Replace(want, "feature_flag.context.id=*", "feature_flag.context.id="+c.p.SubjectHash("alice"), 1)
			wantSorted := strings.Fields(want)
			sort.Strings(wantSorted)
			if got != strings.Join(wantSorted, " ") {
				t.Fatalf("attributes\n got %s\nwant %s", got, strings.Join(wantSorted, " "))
			}
			for _, kv := range decisionAttributes(c.p, req.Hop, &o) {
				if v := kv.Value.String(); v == "" || (kv.Key == wire.AttrBucket && v == "-1") {
					t.Fatalf("%s carries nothing: %q", kv.Key, v)
				}
			}
		})
	}
}

func TestDecisionSpanAndTraceMetadata(t *testing.T) {
	p := meshPolicy(t)
	rec := tracetest.NewSpanRecorder()
	s := New(p, slog.New(slog.DiscardHandler), nil)
	s.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	sampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	}))
	for name, c := range map[string]struct {
		ctx        context.Context
		hop        gray.Hop
		span       string
		wantReason string
	}{
		"edge":                     {sampled, gray.Hop{Service: "frontend"}, "decide frontend", "no-identity"},
		"inner":                    {sampled, gray.Hop{Inner: true, Service: "orders"}, "follow-lane orders", wire.ReasonDefault},
		"shared edge listener":     {sampled, gray.Hop{}, "decide", "no-identity"},
		"untraced: no span, no md": {context.Background(), gray.Hop{Service: "frontend"}, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(rec.Ended())
			st := &streamState{hop: c.hop}
			resp, err := s.answer(c.ctx, st, requestHeaders(headers(), ""))
			if err != nil {
				t.Fatal(err)
			}
			st.endSpan() // as Process does once the answer is sent
			ended := rec.Ended()[before:]
			if c.span == "" {
				if len(ended) != 0 || resp.DynamicMetadata != nil {
					t.Fatalf("untraced request: %d spans, metadata %v", len(ended), resp.DynamicMetadata)
				}
				return
			}
			if len(ended) != 1 || ended[0].Name() != c.span {
				t.Fatalf("spans %v, want one named %q", ended, c.span)
			}
			got := resp.GetDynamicMetadata().GetFields()[wire.MetadataNamespace].GetStructValue().GetFields()[wire.MetadataReason].GetStringValue()
			if got != c.wantReason {
				t.Fatalf("dynamic metadata reason %q, want %q", got, c.wantReason)
			}
		})
	}
}

// TestDecisionSpanEndsWhenItsAnswerIsSent: over a real gRPC stream with
// no stats handler, the trace context Envoy sends in the stream's
// metadata parents the decision's span, and that span has ended once the
// answer arrives, while Envoy still holds the stream open (as it does for
// a request whose response headers graymesh asks for).
func TestDecisionSpanEndsWhenItsAnswerIsSent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	s := New(meshPolicy(t), slog.New(slog.DiscardHandler), nil)
	s.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	client := dial(t, s)
	envoySpan := "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(t.Context(),
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"+envoySpan+"-01",
		wire.MetadataHop, wire.HopEdge, wire.MetadataService, "frontend")
	stream, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(requestHeaders(headers(), "")); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	var ended []sdktrace.ReadOnlySpan
	for range 100 { // the server sends, then ends the span: poll briefly
		if ended = rec.Ended(); len(ended) > 0 {
			break
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if len(ended) != 1 || ended[0].Name() != "decide frontend" {
		t.Fatalf("ended spans %v while the stream is open, want the decision's", ended)
	}
	if got := ended[0].Parent().SpanID().String(); got != envoySpan || ended[0].SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("the decision's span has parent %s, want Envoy's %s", got, envoySpan)
	}
	if open := len(rec.Started()) - len(rec.Ended()); open != 0 {
		t.Fatalf("%d spans still open while the stream is", open)
	}
	_ = stream.CloseSend()
}
