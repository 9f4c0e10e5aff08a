package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/tracecheck"
	"github.com/graymesh/graymesh/internal/core/tracecheck/jaegertest"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// countingJaeger serves store and counts the bytes of its answers.
func countingJaeger(t *testing.T, store *jaegertest.Store) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var bytes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		store.ServeHTTP(rec, r)
		bytes.Add(int64(rec.Body.Len()))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv, &bytes
}

// cleanChains are n clean gray chains, one every 100 ms before end.
func cleanChains(prefix string, n int, end time.Time) []tracecheck.Trace {
	var out []tracecheck.Trace
	for i := range n {
		at := end.Add(-time.Duration(i) * 100 * time.Millisecond).UnixMicro()
		out = append(out, chain(fmt.Sprintf("%s%d", prefix, i), at, hopTags{"frontend", "gray", ""}, hopTags{"pricing", "gray", ""}))
	}
	return out
}

// A read that does not cover the window must not show a verdict, let
// alone a green one: the leaks may be in what was not read.
func TestChainsShowNoVerdictOverAPartialRead(t *testing.T) {
	store := &jaegertest.Store{}
	store.Add(cleanChains("c", 600, time.Now().Add(-time.Minute))...)
	jaeger, _ := countingJaeger(t, store)
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL, TraceSearches: 1})
	f.login()
	_, page := f.do("GET", "/ui/chains", nil, nil)
	if strings.Contains(page, `class="good" id="leaks"`) || !strings.Contains(page, `id="no-verdict"`) {
		t.Fatalf("a partial read shows a verdict:\n%s", page)
	}
}

func TestChainsFilterLeaksAndFailOpensPerChain(t *testing.T) {
	store := &jaegertest.Store{}
	at := time.Now().Add(-time.Minute).UnixMicro()
	twoLeaks := chain("t-two", at, hopTags{"frontend", "gray", ""}, hopTags{"orders", "stable", ""}, hopTags{"pricing", "stable", ""})
	failOpen := chain("t-failopen", at+1, hopTags{"frontend", "stable", ""}, hopTags{"pricing", "stable", ""})
	// The edge sidecar's span: graymesh's answer never arrived.
	failOpen.Processes["fe-sc"] = tracecheck.Process{ServiceName: "frontend-sidecar"}
	failOpen.Spans = append(failOpen.Spans, tracecheck.Span{SpanID: "fe-in", OperationName: "inbound frontend", StartTime: at, ProcessID: "fe-sc",
		Tags: []tracecheck.Tag{{Key: "span.kind", Value: "server"}, {Key: "feature_flag.result.reason", Value: "error"}, {Key: "graymesh.lane", Value: "stable"}}})
	failOpen.Spans[0].References = []tracecheck.Reference{{RefType: "CHILD_OF", SpanID: "fe-in"}}
	store.Add(append(cleanChains("c", 5, time.UnixMicro(at)), twoLeaks, failOpen)...)
	jaeger, _ := countingJaeger(t, store)
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL, JaegerUI: "http://127.0.0.1:16686"})
	f.login()
	_, page := f.do("GET", "/ui/chains", nil, nil)
	for _, want := range []string{`id="leaks">1<`, `id="leak-hops">2 of`, `id="fail-opens">1<`, "newest 7 of 7 chains", `id="filter-problems"`} {
		if !strings.Contains(page, want) {
			t.Errorf("chains page lacks %q", want)
		}
	}
	_, page = f.do("GET", "/ui/live/chains?only=problems", nil, nil)
	for _, want := range []string{`href="http://127.0.0.1:16686/trace/t-two"`, `href="http://127.0.0.1:16686/trace/t-failopen"`, "fail-open", "newest 2 of 2 chains with a leak, a fail-open or a lagging-node split"} {
		if !strings.Contains(page, want) {
			t.Errorf("filtered chains lack %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "/trace/c1") {
		t.Error("the filter shows a clean chain")
	}
}

// TestChainsRefreshReadsOnlyWhatIsNew: a refresh reads what started since
// the last read (and what was pending then), not the whole window again,
// and still counts every chain in the window. It logs the searches and
// bytes each view took from Jaeger.
func TestChainsRefreshReadsOnlyWhatIsNew(t *testing.T) {
	store := &jaegertest.Store{}
	end := time.Now().Add(-20 * time.Second)
	store.Add(cleanChains("old", 2000, end)...)
	jaeger, bytes := countingJaeger(t, store)
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL})
	view := func(name string) int64 {
		r0, b0, t0 := store.Requests(), bytes.Load(), time.Now()
		resp, page := f.do("GET", "/ui/live/chains", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", name, resp.Status)
		}
		took := time.Since(t0)
		searches, read := store.Requests()-r0, bytes.Load()-b0
		t.Logf("%s: %d searches, %d bytes from Jaeger, %s", name, searches, read, took)
		if !strings.Contains(page, `id="leaks">0<`) {
			t.Errorf("%s: no verdict over a complete read", name)
		}
		return read
	}
	// Logging in shows the releases page, which reads the chains too (for
	// failovers): that is the first read of the window.
	f.login()
	t.Logf("login: %d searches, %d bytes from Jaeger", store.Requests(), bytes.Load())
	first := view("first chains view")
	first = max(first, bytes.Load())
	store.Add(cleanChains("new", 20, time.Now().Add(-15*time.Second))...)
	again := view("refresh")
	if again*10 > first {
		t.Errorf("a refresh read %d bytes, the first view %d: it reads the window again", again, first)
	}
	_, page := f.do("GET", "/ui/live/chains", nil, nil)
	if !strings.Contains(page, "newest 50 of 2,020 chains") && !strings.Contains(page, "newest 50 of 2020 chains") {
		t.Errorf("the refreshed page does not count every chain in the window:\n%s", page[:min(len(page), 2000)])
	}
}

// Gray being down — its endpoints not answering, the sidecars failing
// over to stable — is shown on the release, not only as a fallback in a
// chain.
func TestGrayDownIsShownOnTheRelease(t *testing.T) {
	store := &jaegertest.Store{}
	at := time.Now().Add(-30 * time.Second).UnixMicro()
	store.Add(chain("t-down", at, hopTags{"frontend", "gray", ""}, hopTags{"pricing", "stable", "gray-unavailable"}))
	jaeger, _ := countingJaeger(t, store)
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL})
	f.login()
	_, page := f.do("GET", "/ui/live/releases", nil, nil)
	if !strings.Contains(page, `id="down-gray"`) || !strings.Contains(page, "⚠ gray down") {
		t.Errorf("the releases page does not say gray is down:\n%s", page)
	}
	_, page = f.do("GET", "/ui/live/releases/shop-v2", nil, nil)
	if !strings.Contains(page, "⚠ down</strong> at pricing: 1 hop served by stable instead (fallback gray-unavailable)") {
		t.Errorf("the release page does not say where gray is down:\n%s", page)
	}
	_, page = f.do("GET", "/ui/chains", nil, nil)
	if !strings.Contains(page, "⚠ down, stable served: gray-unavailable") {
		t.Errorf("the chains page draws a failover like a planned fallback:\n%s", page)
	}

	healthy := &jaegertest.Store{}
	healthy.Add(chain("t-ok", at, hopTags{"frontend", "gray", ""}, hopTags{"inventory", "stable", "no-gray-version"}))
	jaeger2, _ := countingJaeger(t, healthy)
	g := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger2.URL})
	g.login()
	if _, page := g.do("GET", "/ui/live/releases/shop-v2", nil, nil); strings.Contains(page, "⚠ down") || !strings.Contains(page, "answering: no failover") {
		t.Errorf("a planned fallback reads as gray down:\n%s", page)
	}
	bare := newFixture(t, daemon.Options{}, Options{})
	bare.login()
	if _, page := bare.do("GET", "/ui/live/releases/shop-v2", nil, nil); !strings.Contains(page, "unknown: no Jaeger configured") {
		t.Error("without traces the release page claims to know gray's health")
	}
}

// A chain stopped as killed by a node behind the edge's version is no
// kill: the page counts it apart, marks the hop and keeps it in the
// problems filter.
func TestChainsShowALaggingNodeSplit(t *testing.T) {
	at := time.Now().Add(-time.Minute).UnixMicro()
	split := tracecheck.Trace{TraceID: "t-split", Processes: map[string]tracecheck.Process{
		"gm": {ServiceName: "graymesh"}, "fe": {ServiceName: "frontend"}, "or-sc": {ServiceName: "orders-sidecar"}, "or": {ServiceName: "orders"},
	}}
	tag := func(kv ...string) []tracecheck.Tag {
		var out []tracecheck.Tag
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, tracecheck.Tag{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	ref := func(id string) []tracecheck.Reference {
		return []tracecheck.Reference{{RefType: "CHILD_OF", SpanID: id}}
	}
	split.Spans = []tracecheck.Span{
		{SpanID: "d", OperationName: "decide frontend", StartTime: at, ProcessID: "gm",
			Tags: tag("graymesh.hop", "edge", "graymesh.lane", "gray", "feature_flag.result.variant", "gray", "feature_flag.version", "3")},
		{SpanID: "f", OperationName: "serve frontend gray", StartTime: at + 1, ProcessID: "fe", References: ref("d"),
			Tags: tag("feature_flag.result.variant", "gray", "graymesh.lane", "gray")},
		{SpanID: "oi", OperationName: "inbound orders", StartTime: at + 2, ProcessID: "or-sc", References: ref("f"),
			Tags: tag("span.kind", "server", "feature_flag.result.reason", "killed", "feature_flag.version", "2", "graymesh.lane", "stable")},
		{SpanID: "o", OperationName: "serve orders stable", StartTime: at + 3, ProcessID: "or", References: ref("oi"),
			Tags: tag("feature_flag.result.variant", "stable", "graymesh.lane", "stable")},
	}
	store := &jaegertest.Store{}
	store.Add(append(cleanChains("c", 3, time.UnixMicro(at)), split)...)
	jaeger, _ := countingJaeger(t, store)
	f := newFixture(t, daemon.Options{}, Options{Jaeger: jaeger.URL})
	f.login()
	_, page := f.do("GET", "/ui/chains", nil, nil)
	for _, want := range []string{`id="lagging-splits">1<`, "≠ stopped as killed by a node behind the edge's version (its kill stops lanes through 2)"} {
		if !strings.Contains(page, want) {
			t.Errorf("chains page lacks %q:\n%s", want, page)
		}
	}
	_, page = f.do("GET", "/ui/live/chains?only=problems", nil, nil)
	if !strings.Contains(page, "t-split") || strings.Contains(page, "<code>c1</code>") {
		t.Errorf("the problems filter does not keep exactly the split chain:\n%s", page)
	}
}
