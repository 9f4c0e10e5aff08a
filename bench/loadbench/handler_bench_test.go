package loadbench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/extproc"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// benchPolicy compiles the load harness's own graymesh config.
func benchPolicy(tb testing.TB) (*gray.Policy, []byte) {
	tb.Helper()
	dir := tb.TempDir()
	secret := []byte("loadbench-hs256-secret-0123456789abcdef")
	if err := os.WriteFile(filepath.Join(dir, "hs.secret"), secret, 0o600); err != nil {
		tb.Fatal(err)
	}
	p := ports{listener: 10000, extproc: "127.0.0.1:1", xds: "127.0.0.1:2", admin: "127.0.0.1:3", stable: "127.0.0.1:4", gray: "127.0.0.1:5"}
	path := filepath.Join(dir, "graymesh.yaml")
	cfg, err := config.Parse(p.graymeshYAML(productionCacheSize, 0), path)
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := gray.Compile(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return pol, secret
}

// envoyHeaders is the header map Envoy sends graymesh for one of the
// harness's requests: pseudo headers, the workload's headers and what
// Envoy adds (x-forwarded-for, x-request-id, x-envoy-expected-rq-timeout-ms).
func envoyHeaders(tb testing.TB, secret []byte, subject string) (*corev3.HeaderMap, map[string]*structpb.Struct) {
	tb.Helper()
	tok, err := subjectToken(secret, subject, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	kv := []string{
		":authority", "shop.example.com", ":path", "/api/cart/" + subject, ":method", "GET", ":scheme", "http",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"accept", "application/json, text/plain, */*", "accept-language", "en-US,en;q=0.9,zh-CN;q=0.8",
		"accept-encoding", "gzip, deflate, br", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"x-forwarded-proto", "https", "cookie", "session=s0000002a; theme=dark; gm_device=d-42",
		"authorization", "Bearer " + tok, "x-vegeta-seq", "123456",
		"x-forwarded-for", "127.0.0.1", "x-request-id", "8a1f6c2e-5b7d-4e0b-9f3a-2d4c6e8a0b1c",
		"x-envoy-expected-rq-timeout-ms", "15000",
	}
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	attrs := map[string]*structpb.Struct{wire.ExtProcFilterName: {Fields: map[string]*structpb.Value{
		wire.SourceAddressAttribute: structpb.NewStringValue("127.0.0.1:40000"),
	}}}
	return hm, attrs
}

// BenchmarkCachedDecision is the decision on a cached identity: the
// token-cache lookup (SHA-256 of the token) and the rules, through
// gray.Policy.Decide, for a returning HS256 caller bucketed by percentage.
func BenchmarkCachedDecision(b *testing.B) {
	p, secret := benchPolicy(b)
	tok, err := subjectToken(secret, "user-42", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	req := gray.Request{Authorization: "Bearer " + tok, Cookie: "session=s0000002a; theme=dark; gm_device=d-42", Now: time.Now()}
	if d := p.Decide(req); d.Reason != gray.ReasonPercent && d.Reason != gray.ReasonNotSelected {
		b.Fatalf("decided by %s, want the percentage", d.Reason)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = p.Decide(req)
	}
}

// BenchmarkHandler is the ext_proc handler's work on one request without
// the transport: what extproc.Server does between Recv and Send at the
// edge (Extract, Policy.Decide with a warm token cache, membership and
// fallback included, Response), minus the metrics observer and the tracing check.
func BenchmarkHandler(b *testing.B) {
	p, secret := benchPolicy(b)
	hm, attrs := envoyHeaders(b, secret, "user-42")
	handle := func() {
		req := extproc.Extract(p, hm, attrs)
		req.Now = time.Now()
		o := p.Decide(req)
		_ = extproc.Response(&o, hm)
		_ = p.ResponseHeaders(&o)
	}
	handle()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		handle()
	}
}
