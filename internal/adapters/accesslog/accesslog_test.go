package accesslog

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

func entry(cluster string, code uint32, d time.Duration, caller string, flags *accesslogdatav3.ResponseFlags) *accesslogdatav3.HTTPAccessLogEntry {
	c := &accesslogdatav3.AccessLogCommon{UpstreamCluster: cluster, TimeToLastUpstreamRxByte: durationpb.New(d), ResponseFlags: flags}
	if caller != "" {
		md, _ := structpb.NewStruct(map[string]any{wire.MetadataCaller: caller})
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{wire.MetadataNamespace: md}}
	}
	return &accesslogdatav3.HTTPAccessLogEntry{CommonProperties: c, Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(code)}}
}

// periodic marks e as Envoy marks an entry flushed while its request runs.
func periodic(e *accesslogdatav3.HTTPAccessLogEntry) *accesslogdatav3.HTTPAccessLogEntry {
	e.CommonProperties.AccessLogType = accesslogdatav3.AccessLogType_DownstreamPeriodic
	return e
}

func TestReceiverTranslatesEntries(t *testing.T) {
	var (
		mu      sync.Mutex
		samples []analysis.Sample
	)
	r := New(func(s analysis.Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() }, slog.New(slog.DiscardHandler))
	r.SetPlan(&plan.Plan{Services: []plan.Service{{Name: "shop", Envs: []plan.Env{{Name: "stable"}, {Name: "gray"}}}}})

	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	r.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := accesslogsvcv3.NewAccessLogServiceClient(conn).StreamAccessLogs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	withPath := entry("shop|gray", 200, 12*time.Millisecond, "c1", nil)
	withPath.Request = &accesslogdatav3.HTTPRequestProperties{Path: "/cart/42/items?x=1"}
	shadow := entry("shop|gray", 500, time.Millisecond, "", nil) // a stress-test request: never a sample
	shadow.Request = &accesslogdatav3.HTTPRequestProperties{Path: "/", RequestHeaders: map[string]string{wire.HeaderStress: "1"}}
	entries := []*accesslogdatav3.HTTPAccessLogEntry{
		withPath,
		shadow,
		entry("shop|stable", 503, time.Millisecond, "", nil),
		entry("shop|gray", 0, 5*time.Millisecond, "", &accesslogdatav3.ResponseFlags{UpstreamRemoteReset: true}),
		entry("shop|gray", 0, 5*time.Millisecond, "", &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}),
		entry("inbound|orders", 200, time.Millisecond, "", nil), // a peer sidecar, no environment
		entry("graymesh_extproc", 200, time.Millisecond, "", nil),
		periodic(entry("shop|gray", 200, time.Millisecond, "", nil)), // the request still open: its end counts
	}
	if err := stream.Send(&accesslogsvcv3.StreamAccessLogsMessage{
		Identifier: &accesslogsvcv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "n"}, LogName: wire.AccessLogName},
		LogEntries: &accesslogsvcv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogsvcv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}},
	}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "every entry read or skipped", testutil.Within(5*time.Second),
		testutil.Holds(func() bool { return r.Entries.Load()+r.Skipped.Load()+r.Stress.Load() >= int64(len(entries)) }))
	mu.Lock()
	defer mu.Unlock()
	want := []analysis.Sample{
		{Service: "shop", Env: "gray", Duration: 12 * time.Millisecond, Caller: "c1", Route: "/cart/:id"},
		{Service: "shop", Env: "stable", Failed: true, Duration: time.Millisecond, Route: "/"},
		{Service: "shop", Env: "gray", Failed: true, Duration: 5 * time.Millisecond, Route: "/"},
		{Service: "shop", Env: "gray", Duration: 5 * time.Millisecond, Route: "/"},
	}
	if len(samples) != len(want) || r.Skipped.Load() != 3 || r.Stress.Load() != 1 {
		t.Fatalf("samples %+v, skipped %d, stress %d", samples, r.Skipped.Load(), r.Stress.Load())
	}
	for i := range want {
		if samples[i] != want[i] {
			t.Errorf("sample %d: %+v, want %+v", i, samples[i], want[i])
		}
	}
	// Close ends the stream from graymesh's side.
	r.Close()
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("stream after Close: %v", err)
	}
}

// TestCallerOfAProofRoute: a request the edge's Envoy routed on a proof
// counts for the caller the proof names (its caller hash, a logged request
// header); graymesh's own answer wins when both are there.
func TestCallerOfAProofRoute(t *testing.T) {
	proof := entry("shop|gray", 200, time.Millisecond, "", nil)
	proof.Request = &accesslogdatav3.HTTPRequestProperties{RequestHeaders: map[string]string{wire.HeaderProofCallerHash: "c9"}}
	both := entry("shop|gray", 200, time.Millisecond, "c1", nil)
	both.Request = proof.Request
	for _, tt := range []struct {
		name string
		e    *accesslogdatav3.HTTPAccessLogEntry
		want string
	}{
		{"proof", proof, "c9"},
		{"graymesh's answer", both, "c1"},
		{"neither", entry("shop|gray", 200, time.Millisecond, "", nil), ""},
	} {
		if got := caller(tt.e); got != tt.want {
			t.Errorf("%s: caller %q, want %q", tt.name, got, tt.want)
		}
	}
}
