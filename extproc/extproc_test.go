package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

const testSecret = "0123456789abcdef0123456789abcdef"

const testConfig = `
identity:
  jwt:
    algorithms: [HS256]
    keys: [{kid: k, alg: HS256, secret: "` + testSecret + `"}]
releases:
  - name: shop-v2
    env: gray
    whitelist: [alice]
    cidrs: [10.9.0.0/16]
    headers: [{name: x-region, exact: hz}]
`

func testPolicy(t testing.TB) *gray.Policy { return compile(t, testConfig) }

func compile(t testing.TB, yaml string) *gray.Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := gray.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func token(t testing.TB, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func headers(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

func dial(t testing.TB, s *Server) extprocsvcv3.ExternalProcessorClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return extprocsvcv3.NewExternalProcessorClient(conn)
}

func requestHeaders(hm *corev3.HeaderMap, source string) *extprocsvcv3.ProcessingRequest {
	req := &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: hm, EndOfStream: true}}}
	if source != "" {
		req.Attributes = map[string]*structpb.Struct{wire.ExtProcFilterName: {Fields: map[string]*structpb.Value{wire.SourceAddressAttribute: structpb.NewStringValue(source)}}}
	}
	return req
}

func mutation(t *testing.T, resp *extprocsvcv3.ProcessingResponse) (map[string]string, []string) {
	t.Helper()
	rh := resp.GetRequestHeaders()
	if rh == nil {
		t.Fatalf("not a request headers response: %v", resp)
	}
	if !rh.GetResponse().GetClearRouteCache() {
		t.Fatal("route cache not cleared")
	}
	set := map[string]string{}
	for _, h := range rh.GetResponse().GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetValue() != "" {
			t.Fatalf("%s uses value, not raw_value", h.GetHeader().GetKey())
		}
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Fatalf("%s appends", h.GetHeader().GetKey())
		}
		set[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return set, rh.GetResponse().GetHeaderMutation().GetRemoveHeaders()
}

func TestProcess(t *testing.T) {
	p := testPolicy(t)
	client := dial(t, New(p, slog.New(slog.DiscardHandler), nil))
	tests := []struct {
		name       string
		in         *corev3.HeaderMap
		source     string
		env        string
		reason     string
		wantRemove []string
	}{
		{"whitelisted bearer", headers(":path", "/", "authorization", "Bearer "+token(t, "alice")), "", "gray", "whitelist", nil},
		{"other subject", headers("authorization", "Bearer "+token(t, "bob")), "", "stable", "not-selected", nil},
		{"spoofed env, no identity", headers(wire.HeaderEnv, "gray", "x-gray-lane", "x"), "", "", "no-identity", []string{wire.HeaderEnv, "x-gray-lane"}},
		{"spoofed env with forged token", headers("authorization", "Bearer "+token(t, "alice")+"x", wire.HeaderEnv, "gray"), "", "", "invalid-token", []string{wire.HeaderEnv}},
		{"spoofed release is overwritten, not removed", headers(wire.HeaderRelease, "evil", "authorization", "Bearer "+token(t, "alice")), "", "gray", "whitelist", nil},
		{"source address in range", headers(), "10.9.1.1:5555", "gray", "cidr", nil},
		{"forwarded-for is not trusted", headers("x-forwarded-for", "10.9.1.1"), "127.0.0.1:5555", "", "no-identity", nil},
		{"header matcher", headers("x-region", "hz"), "", "gray", "header", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := client.Process(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(requestHeaders(tt.in, tt.source)); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			set, removed := mutation(t, resp)
			if set[wire.HeaderEnv] != tt.env || set[wire.HeaderReason] != tt.reason {
				t.Fatalf("set %v, want env %q reason %q", set, tt.env, tt.reason)
			}
			if set[wire.HeaderVersion] != p.Engine.Version() {
				t.Fatalf("version %q", set[wire.HeaderVersion])
			}
			if tt.env == "gray" && set[wire.HeaderRelease] != "shop-v2" {
				t.Fatalf("release %q", set[wire.HeaderRelease])
			}
			if len(removed) != len(tt.wantRemove) {
				t.Fatalf("removed %v, want %v", removed, tt.wantRemove)
			}
			for i := range removed {
				if removed[i] != tt.wantRemove[i] {
					t.Fatalf("removed %v, want %v", removed, tt.wantRemove)
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("stream end: %v, want EOF", err)
			}
		})
	}
}

func TestProcessOtherPhasesPassThrough(t *testing.T) {
	client := dial(t, New(testPolicy(t), slog.New(slog.DiscardHandler), nil))
	stream, err := client.Process(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HttpHeaders{}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetResponseHeaders() == nil {
		t.Fatalf("resp %v err %v", resp, err)
	}
}

func TestSwap(t *testing.T) {
	s := New(testPolicy(t), slog.New(slog.DiscardHandler), nil)
	cfg, err := config.Parse([]byte(`releases: [{name: r2, env: gray, whitelist: [bob]}]`), "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := gray.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Swap(p2)
	if s.Policy() != p2 {
		t.Fatal("swap not visible")
	}
}
