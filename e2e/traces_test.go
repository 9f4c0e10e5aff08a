package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

// traceSpan is one span of a trace as Jaeger returns it, flattened.
type traceSpan struct {
	ID, Parent, Process, Name string
	Tags                      map[string]any
}

func (s traceSpan) tag(key string) string {
	if v, ok := s.Tags[key]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

func (s traceSpan) String() string {
	keys := make([]string, 0, len(s.Tags))
	for k := range s.Tags {
		if strings.HasPrefix(k, "feature_flag.") || strings.HasPrefix(k, "graymesh.") || k == "span.kind" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", s.Process, s.Name)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, s.Tags[k])
	}
	return b.String()
}

// traceSpans reads one trace from Jaeger.
func (m *fourHop) traceSpans(traceID string) ([]traceSpan, error) {
	resp, err := http.Get(m.query + "/api/traces/" + traceID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("trace %s: %s", traceID, resp.Status)
	}
	var body struct {
		Data []struct {
			Spans []struct {
				SpanID, OperationName, ProcessID string
				References                       []struct{ SpanID string }
				Tags                             []struct {
					Key   string
					Value any
				}
			}
			Processes map[string]struct{ ServiceName string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if len(body.Data) != 1 {
		return nil, fmt.Errorf("trace %s: %d traces", traceID, len(body.Data))
	}
	tr := body.Data[0]
	out := make([]traceSpan, 0, len(tr.Spans))
	for _, s := range tr.Spans {
		ts := traceSpan{ID: s.SpanID, Process: tr.Processes[s.ProcessID].ServiceName, Name: s.OperationName, Tags: map[string]any{}}
		if len(s.References) > 0 {
			ts.Parent = s.References[0].SpanID
		}
		for _, t := range s.Tags {
			ts.Tags[t.Key] = t.Value
		}
		out = append(out, ts)
	}
	return out, nil
}

// waitForSpans polls Jaeger until the trace holds a span for every name
// in want (by process and span name: "orders-sidecar inbound orders"),
// and returns them by that key. Envoy flushes its spans on its own
// schedule, after the services' spans verify-traces waited for.
func (m *fourHop) waitForSpans(traceID string, want ...string) map[string]traceSpan {
	m.t.Helper()
	var got map[string]traceSpan
	var all []traceSpan
	err := testutil.Poll{Tries: 150, Every: 200 * time.Millisecond}.Until(func() error {
		spans, err := m.traceSpans(traceID)
		if err != nil {
			return err
		}
		all = spans
		got = map[string]traceSpan{}
		for _, s := range spans {
			got[s.Process+" "+s.Name] = s
		}
		for _, w := range want {
			if _, ok := got[w]; !ok {
				return fmt.Errorf("no span %q yet", w)
			}
		}
		return nil
	})
	if err != nil {
		var names []string
		for _, s := range all {
			names = append(names, s.String())
		}
		m.t.Fatalf("trace %s: spans %v not all in Jaeger (%v); have:\n%s", traceID, want, err, strings.Join(names, "\n"))
	}
	return got
}

// assertNoEmptyAttributes fails on a graymesh or feature_flag attribute
// that carries nothing: an empty string, or bucket -1.
func (m *fourHop) assertNoEmptyAttributes(traceID string) {
	m.t.Helper()
	spans, err := m.traceSpans(traceID)
	must(m.t, err)
	for _, s := range spans {
		for k, v := range s.Tags {
			if !strings.HasPrefix(k, "feature_flag.") && !strings.HasPrefix(k, "graymesh.") {
				continue
			}
			if str := fmt.Sprint(v); str == "" || (k == wire.AttrBucket && str == "-1") {
				m.t.Errorf("trace %s: span %s carries %s=%q", traceID, s, k, str)
			}
		}
	}
}

// expectTags fails unless span carries exactly these vocabulary values
// ("" = the attribute is absent).
func (m *fourHop) expectTags(s traceSpan, want map[string]string) {
	m.t.Helper()
	for k, v := range want {
		if got := s.tag(k); got != v {
			m.t.Errorf("span %s: %s=%q, want %q", s, k, got, v)
		}
	}
}

// logTrace logs a trace's spans, parents first, as a reader sees them.
func (m *fourHop) logTrace(traceID string) {
	m.t.Helper()
	spans, err := m.traceSpans(traceID)
	must(m.t, err)
	children := map[string][]traceSpan{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.ID] = true
	}
	for _, s := range spans {
		parent := s.Parent
		if !ids[parent] {
			parent = ""
		}
		children[parent] = append(children[parent], s)
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			fmt.Fprintf(&b, "\n%s%s", strings.Repeat("  ", depth), s)
			walk(s.ID, depth+1)
		}
	}
	walk("", 0)
	m.t.Logf("trace %s:%s", traceID, b.String())
}

// searchFinds reports whether a Jaeger search (the query string of GET
// /api/traces, as docs/traces.md shows it) returns traceID.
func (m *fourHop) searchFinds(query, traceID string) (bool, error) {
	resp, err := http.Get(m.query + "/api/traces?" + query)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var body struct{ Data []struct{ TraceID string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, err
	}
	for _, t := range body.Data {
		if t.TraceID == traceID {
			return true, nil
		}
	}
	return false, nil
}

// assertDocumentedSearchesFind runs the searches docs/traces.md shows
// for a gray chain decided by the whitelist: by the edge span's name and
// by the reason tag on the edge sidecar's service.
func (m *fourHop) assertDocumentedSearchesFind(traceID string) {
	m.t.Helper()
	for _, q := range []string{
		"service=frontend-sidecar&operation=" + url.QueryEscape("inbound frontend gray") + "&lookback=1h&limit=1000",
		"service=frontend-sidecar&tags=" + url.QueryEscape(`{"feature_flag.result.reason":"whitelist"}`) + "&lookback=1h&limit=1000",
	} {
		found, err := m.searchFinds(q, traceID)
		if err != nil || !found {
			m.t.Errorf("the search %q does not find trace %s (%v)", q, traceID, err)
		}
	}
}
