package promsource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/analysis"
)

var (
	from = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	to   = from.Add(30 * time.Second)
	shop = analysis.Query{Release: "shop-v2", Env: "gray", Services: []string{"shop"}, From: from, To: to}
)

func TestQueries(t *testing.T) {
	clusters := []string{"shop|gray", "shop|stable"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"requests", RequestsQuery(clusters, 30*time.Second, ""),
			`sum by (envoy_cluster_name, envoy_response_code_class) (increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=~"shop\\|gray|shop\\|stable"}[30000ms]))`},
		{"latency", LatencyQuery(clusters, 1500*time.Millisecond, `,job="envoy"`),
			`sum by (envoy_cluster_name, le) (increase(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"shop\\|gray|shop\\|stable",job="envoy"}[1500ms]))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("\n got %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

func TestLabelMatchers(t *testing.T) {
	got, err := labelMatchers(map[string]string{"namespace": `sh"op`, "job": "envoy"})
	if err != nil || got != `,job="envoy",namespace="sh\"op"` {
		t.Errorf("got %q, %v", got, err)
	}
	for _, bad := range []string{"1job", "__name__", "envoy_cluster_name", "le", "a-b"} {
		if _, err := labelMatchers(map[string]string{bad: "x"}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("label %q: error %v, want one naming it", bad, err)
		}
	}
}

// fakeProm answers /api/v1/query with the body of the first key found in
// the query ("upstream_rq_xx" or "upstream_rq_time"), and records what it
// was asked.
type fakeProm struct {
	mu      sync.Mutex
	answers map[string]string
	status  int
	asked   []string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/prom/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query().Get("query")
	f.asked = append(f.asked, q+" @ "+r.URL.Query().Get("time"))
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	for key, body := range f.answers {
		if strings.Contains(q, key) {
			_, _ = w.Write([]byte(body))
			return
		}
	}
	_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
}

func vector(series ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(series, ",") + `]}}`
}

func series(labels, value string) string {
	return `{"metric":{` + labels + `},"value":[1796119230.000,"` + value + `"]}`
}

func healthyAnswers() map[string]string {
	return map[string]string{
		"upstream_rq_xx": vector(
			series(`"envoy_cluster_name":"shop|gray","envoy_response_code_class":"2"`, "98.7"),
			series(`"envoy_cluster_name":"shop|gray","envoy_response_code_class":"5"`, "2.2"),
			series(`"envoy_cluster_name":"shop|stable","envoy_response_code_class":"2"`, "890"),
			series(`"envoy_cluster_name":"shop|stable","envoy_response_code_class":"4"`, "5"),
			series(`"envoy_cluster_name":"shop|stable","envoy_response_code_class":"5"`, "10"),
		),
		"upstream_rq_time": vector(
			series(`"envoy_cluster_name":"shop|gray","le":"10"`, "0"),
			series(`"envoy_cluster_name":"shop|gray","le":"20"`, "60"),
			series(`"envoy_cluster_name":"shop|gray","le":"40"`, "99"),
			series(`"envoy_cluster_name":"shop|gray","le":"+Inf"`, "101"),
			series(`"envoy_cluster_name":"shop|stable","le":"+Inf"`, "905"),
			series(`"envoy_cluster_name":"shop|stable","le":"10"`, "905"),
		),
	}
}

func newSource(t *testing.T, f *fakeProm) *Source {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	s, err := New(srv.URL+"/prom", map[string]string{"job": "envoy"}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCollectEvidence(t *testing.T) {
	f := &fakeProm{answers: healthyAnswers()}
	e, err := newSource(t, f).CollectEvidence(context.Background(), shop)
	if err != nil {
		t.Fatal(err)
	}
	g, s := e.Services["shop"].Gray, e.Services["shop"].Stable
	if g.Requests != 101 || g.Errors != 2 || s.Requests != 905 || s.Errors != 10 {
		t.Errorf("gray %d/%d stable %d/%d, want 101/2 and 905/10", g.Requests, g.Errors, s.Requests, s.Errors)
	}
	if g.Latency.Count() != 101 || s.Latency.Count() != 905 {
		t.Errorf("latency counts %d, %d, want 101, 905", g.Latency.Count(), s.Latency.Count())
	}
	// 60 of gray's 101 in (10, 20] stand for √200 ≈ 14.1 ms: the median.
	if m := g.Latency.Quantile(0.5); m < 13.8 || m > 14.5 {
		t.Errorf("gray median %.2f ms, want about 14.1", m)
	}
	// stable's all in (0, 10] stand for 10 ms.
	if m := s.Latency.Quantile(0.5); m < 9.8 || m > 10.2 {
		t.Errorf("stable median %.2f ms, want about 10", m)
	}
	if len(f.asked) != 2 {
		t.Fatalf("asked %d queries, want 2", len(f.asked))
	}
	for _, q := range f.asked {
		if !strings.Contains(q, `job="envoy"`) || !strings.Contains(q, "[30000ms]") || !strings.HasSuffix(q, " @ 1796119230.000") {
			t.Errorf("query %q lacks the matcher, the window or its end", q)
		}
	}
}

func TestCollectObservationsSamplesTheBuckets(t *testing.T) {
	obs, err := newSource(t, &fakeProm{answers: healthyAnswers()}).Collect(context.Background(), shop)
	if err != nil {
		t.Fatal(err)
	}
	o := obs.Services[0]
	if o.Service != "shop" || o.Gray.Requests != 101 || len(o.Gray.Latencies) != 101 || len(o.Stable.Latencies) != 905 {
		t.Errorf("got %s gray %d requests, %d latencies; stable %d latencies", o.Service, o.Gray.Requests, len(o.Gray.Latencies), len(o.Stable.Latencies))
	}
}

// TestUnreadableWindowIsAnError: every way the window cannot be read is
// an error — which the analyser records as the window's reason, and makes
// it inconclusive.
func TestUnreadableWindowIsAnError(t *testing.T) {
	missingGray := healthyAnswers()
	missingGray["upstream_rq_xx"] = vector(series(`"envoy_cluster_name":"shop|stable","envoy_response_code_class":"2"`, "900"))
	missingBuckets := healthyAnswers()
	delete(missingBuckets, "upstream_rq_time")
	for _, tc := range []struct {
		name string
		f    *fakeProm
		want string
	}{
		{"query refused", &fakeProm{status: http.StatusBadRequest,
			answers: map[string]string{"": `{"status":"error","errorType":"bad_data","error":"parse error"}`}}, "refused the query (HTTP 400, bad_data): parse error"},
		{"not the API", &fakeProm{status: http.StatusBadGateway, answers: map[string]string{"": "<html>proxy</html>"}}, "HTTP 502, not its API's JSON"},
		{"a matrix", &fakeProm{answers: map[string]string{"": `{"status":"success","data":{"resultType":"matrix","result":[]}}`}}, `a "matrix"`},
		{"NaN", &fakeProm{answers: map[string]string{"": vector(series(`"envoy_cluster_name":"shop|gray"`, "NaN"))}}, "is not a count"},
		{"no gray series", &fakeProm{answers: missingGray}, `no envoy_cluster_upstream_rq_xx series of cluster "shop|gray"`},
		{"no buckets", &fakeProm{answers: missingBuckets}, `no envoy_cluster_upstream_rq_time_bucket series of cluster "shop|gray"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newSource(t, tc.f).CollectEvidence(context.Background(), shop)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPrometheusDownIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s, err := New(url, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectEvidence(context.Background(), shop); err == nil || !strings.Contains(err.Error(), "prometheus unreachable") {
		t.Errorf("error %v, want prometheus unreachable", err)
	}
}

func TestNewRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:9090", "ftp://x", "http://"} {
		if _, err := New(u, nil, nil); err == nil {
			t.Errorf("url %q accepted", u)
		}
	}
}
