package extproc

import (
	"context"
	"log/slog"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/graymesh/graymesh/internal/core/gray"
)

// realisticHeaders is what Envoy forwards for a browser request: pseudo
// headers, the usual browser set, a bearer token and cookies.
func realisticHeaders(tb testing.TB) *corev3.HeaderMap {
	return headers(
		":authority", "shop.example.com", ":path", "/api/cart?id=42", ":method", "GET", ":scheme", "https",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"accept", "application/json, text/plain, */*", "accept-language", "en-US,en;q=0.9,zh-CN;q=0.8",
		"accept-encoding", "gzip, deflate, br", "x-request-id", "8a1f6c2e-5b7d-4e0b-9f3a-2d4c6e8a0b1c",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"x-forwarded-proto", "https", "x-region", "hz",
		"cookie", "session=abc123; theme=dark; gm_device=d-77",
		"authorization", "Bearer "+token(tb, "alice"),
	)
}

func BenchmarkExtract(b *testing.B) {
	p := testPolicy(b)
	hm := realisticHeaders(b)
	attrs := requestHeaders(hm, "10.2.3.4:5678").Attributes
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Extract(p, hm, attrs)
	}
}

func BenchmarkResponse(b *testing.B) {
	hm := realisticHeaders(b)
	o := gray.Outcome{Decision: gray.Decision{Env: "gray", Release: "shop-v2", Rule: "whitelist", Reason: gray.ReasonWhitelist, Version: "9d338e2ddac7"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Response(&o, hm)
	}
}

// BenchmarkProcess is the whole handler over bufconn: one stream per
// request, as Envoy does it, with the token cache warm.
func BenchmarkProcess(b *testing.B) {
	p := testPolicy(b)
	client := dial(b, New(p, slog.New(slog.DiscardHandler), nil))
	req := requestHeaders(realisticHeaders(b), "10.2.3.4:5678")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		stream, err := client.Process(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			b.Fatal(err)
		}
		_ = stream.CloseSend()
	}
}
