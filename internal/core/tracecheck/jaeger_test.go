package tracecheck_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/tracecheck"
	"github.com/graymesh/graymesh/internal/core/tracecheck/jaegertest"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// frontendTrace has one frontend span starting at start and, after it,
// one orders span.
func frontendTrace(id string, start time.Time) tracecheck.Trace {
	us := start.UnixMicro()
	return tracecheck.Trace{TraceID: id, Processes: map[string]tracecheck.Process{"p1": {ServiceName: "frontend"}, "p2": {ServiceName: "orders"}}, Spans: []tracecheck.Span{
		{SpanID: id + "-1", OperationName: "GET /", StartTime: us, ProcessID: "p1"},
		{SpanID: id + "-2", OperationName: "GET /", StartTime: us + 50, ProcessID: "p2"},
	}}
}

// store holds n traces spread over 15 minutes, received in an order that
// is not their start order (batches arrive late and shuffled).
func store(t *testing.T, n int) (*jaegertest.Store, string, tracecheck.Window) {
	t.Helper()
	s := &jaegertest.Store{MaxTraces: 100000}
	rng := rand.New(rand.NewPCG(1, 2))
	traces := make([]tracecheck.Trace, n)
	for i := range traces {
		traces[i] = frontendTrace(fmt.Sprintf("t%04d", i), t0.Add(time.Duration(i)*15*time.Minute/time.Duration(n)))
	}
	for lo := 0; lo < n; lo += 50 {
		batch := traces[lo:min(lo+50, n)]
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	}
	rng.Shuffle(n/50, func(i, j int) {
		for k := 0; k < 50; k++ {
			traces[i*50+k], traces[j*50+k] = traces[j*50+k], traces[i*50+k]
		}
	})
	s.Add(traces...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL, tracecheck.Window{Start: t0, End: t0.Add(15 * time.Minute)}
}

func TestReaderReadsEveryTraceInTheWindow(t *testing.T) {
	s, url, w := store(t, 2913)
	rd := &tracecheck.Reader{BaseURL: url, PageSize: 1000}
	traces, st, err := rd.Read(context.Background(), "frontend", w)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tr := range traces {
		if ids[tr.TraceID] {
			t.Fatalf("trace %s returned twice", tr.TraceID)
		}
		ids[tr.TraceID] = true
	}
	if len(ids) != 2913 || !st.Complete || len(st.Unread) != 0 || st.Requests != s.Requests() {
		t.Fatalf("read %d of 2913 traces, stats %+v, %d requests served", len(ids), st, s.Requests())
	}
	t.Logf("2913 traces read in %d searches of %d", st.Requests, st.PageSize)
	// A narrower window holds only its own traces, ends included.
	narrow := tracecheck.Window{Start: t0.Add(5 * time.Minute), End: t0.Add(10 * time.Minute)}
	traces, st, err = rd.Read(context.Background(), "frontend", narrow)
	if err != nil || !st.Complete {
		t.Fatal(err, st)
	}
	for _, tr := range traces {
		start := time.UnixMicro(tr.Spans[0].StartTime)
		if start.Before(narrow.Start) || start.After(narrow.End) {
			t.Fatalf("trace %s starts at %s, outside %v", tr.TraceID, start, narrow)
		}
	}
	if want := 2913/3 + 1; len(traces) != want {
		t.Fatalf("narrow window: %d traces, want %d", len(traces), want)
	}
}

func TestReaderReportsWhatItCouldNotRead(t *testing.T) {
	_, url, w := store(t, 2913)
	traces, st, err := (&tracecheck.Reader{BaseURL: url, PageSize: 1000, MaxRequests: 3}).Read(context.Background(), "frontend", w)
	if err != nil {
		t.Fatal(err)
	}
	if st.Complete || len(st.Unread) == 0 || st.Requests != 3 || len(traces) >= 2913 {
		t.Fatalf("%d traces, stats %+v", len(traces), st)
	}
	// More traces starting in one microsecond than a page holds: the
	// window cannot be split, and is reported.
	s := &jaegertest.Store{}
	for i := 0; i < 30; i++ {
		s.Add(frontendTrace(fmt.Sprintf("same-%d", i), t0))
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	_, st, err = (&tracecheck.Reader{BaseURL: srv.URL, PageSize: 10}).Read(context.Background(), "frontend", tracecheck.Window{Start: t0, End: t0.Add(time.Second)})
	if err != nil || st.Complete || len(st.Unread) != 1 || !st.Unread[0].Start.Equal(t0) {
		t.Fatalf("%v %+v", err, st)
	}
}

func TestReaderSurfacesJaegerErrors(t *testing.T) {
	s := &jaegertest.Store{MaxTraces: 500}
	srv := httptest.NewServer(s)
	defer srv.Close()
	_, _, err := (&tracecheck.Reader{BaseURL: srv.URL, PageSize: 1000}).Read(context.Background(), "frontend", tracecheck.Window{Start: t0, End: t0.Add(time.Minute)})
	if err == nil {
		t.Fatal("a limit above the store's max_traces was not reported")
	}
}
