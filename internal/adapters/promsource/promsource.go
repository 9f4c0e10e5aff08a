// Package promsource is the analysis's Prometheus source: it reads a
// release's window from the Envoy cluster stats a Prometheus server
// scrapes from every Envoy of the fleet, and gives the analysis the same
// Evidence the embedded access-log source gives — per service and side,
// requests, errors and a latency histogram — for the whole fleet at once.
// The plan names every environment's cluster service|env, so the
// envoy_cluster_name label says which side served a request.
//
// It only translates (PromQL out, JSON in); package analysis judges. A
// window it cannot read — Prometheus unreachable, a query refused, a
// cluster without series — is an error, which makes the window
// inconclusive: never a pass.
package promsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// The Envoy series read, as Envoy's /stats/prometheus names them with its
// default tag extraction: cluster.NAME.upstream_rq_5xx becomes
// envoy_cluster_upstream_rq_xx{envoy_cluster_name="NAME",
// envoy_response_code_class="5"}.
const (
	requestsMetric = "envoy_cluster_upstream_rq_xx"
	latencyMetric  = "envoy_cluster_upstream_rq_time_bucket"
	clusterLabel   = "envoy_cluster_name"
	classLabel     = "envoy_response_code_class"
	// errorClass is the response code class counted as an error. Envoy
	// charges the 503 or 504 it answers itself when the upstream resets,
	// refuses or times out to the same counter, so "no answer" is in it.
	errorClass = "5"
)

// maxResponseBytes bounds one query's answer: a window's answer is a few
// hundred series at most.
const maxResponseBytes = 16 << 20

// defaultTimeout bounds one query when the caller's context has no
// deadline.
const defaultTimeout = 10 * time.Second

// Source reads windows from one Prometheus server.
type Source struct {
	base     *url.URL
	matchers string
	client   *http.Client
}

var (
	_ analysis.Source         = (*Source)(nil)
	_ analysis.EvidenceSource = (*Source)(nil)
)

// New is the source of the Prometheus at baseURL (its HTTP API is under
// baseURL/api/v1), selecting only series that also carry labels (e.g.
// the scrape job, a namespace). client nil is http.DefaultClient.
func New(baseURL string, labels map[string]string, client *http.Client) (*Source, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus url %q is not an http(s) URL", baseURL)
	}
	m, err := labelMatchers(labels)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Source{base: u, matchers: m, client: client}, nil
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// labelMatchers is labels as PromQL equality matchers, each preceded by a
// comma, in name order.
func labelMatchers(labels map[string]string) (string, error) {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(labels)) {
		if !labelName.MatchString(name) || strings.HasPrefix(name, "__") {
			return "", fmt.Errorf("prometheus label %q is not a label name", name)
		}
		if name == clusterLabel || name == classLabel || name == "le" {
			return "", fmt.Errorf("prometheus label %q is set by graymesh's own queries", name)
		}
		// PromQL reads a double-quoted string with Go's escapes.
		fmt.Fprintf(&b, ",%s=%s", name, strconv.Quote(labels[name]))
	}
	return b.String(), nil
}

// CollectEvidence implements analysis.EvidenceSource: every service of q,
// gray and stable, over [q.From, q.To), fleet-wide. Prometheus's series
// carry no route or caller, so the evidence has neither.
func (s *Source) CollectEvidence(ctx context.Context, q analysis.Query) (*analysis.Evidence, error) {
	sides, err := s.collect(ctx, q)
	if err != nil {
		return nil, err
	}
	e := analysis.NewEvidence(q)
	for _, svc := range q.Services {
		se := e.Services[svc]
		fill(&se.Gray, sides[plan.ClusterName(svc, q.Env)])
		fill(&se.Stable, sides[plan.ClusterName(svc, config.Stable)])
	}
	return e, nil
}

// Collect implements analysis.Source, for the fixed-window method: the
// same window with each latency bucket standing for its durations, at most
// analysis.MaxLatencySamples of them a side.
func (s *Source) Collect(ctx context.Context, q analysis.Query) (*analysis.Observations, error) {
	sides, err := s.collect(ctx, q)
	if err != nil {
		return nil, err
	}
	obs := &analysis.Observations{From: q.From, To: q.To}
	for _, svc := range q.Services {
		g, st := sides[plan.ClusterName(svc, q.Env)], sides[plan.ClusterName(svc, config.Stable)]
		obs.Services = append(obs.Services, analysis.Observation{Service: svc, Gray: g.side(), Stable: st.side()})
	}
	return obs, nil
}

// clusterWindow is what one cluster served in the window.
type clusterWindow struct {
	requests, errors int64
	latency          []bucketCount
}

// bucketCount is how many durations (milliseconds) fell in one of
// Envoy's buckets, and the duration that stands for them.
type bucketCount struct {
	ms    float64
	count int64
}

func fill(to *analysis.SideEvidence, c *clusterWindow) {
	to.Requests, to.Errors = c.requests, c.errors
	for _, b := range c.latency {
		to.Latency.AddN(analysis.BucketOf(b.ms), uint64(b.count))
	}
}

func (c *clusterWindow) side() analysis.Side {
	sd := analysis.Side{Requests: int(c.requests), Errors: int(c.errors)}
	var total int64
	for _, b := range c.latency {
		total += b.count
	}
	scale := 1.0
	if total > analysis.MaxLatencySamples {
		scale = float64(analysis.MaxLatencySamples) / float64(total)
	}
	for _, b := range c.latency {
		for range int(math.Round(float64(b.count) * scale)) {
			sd.Latencies = append(sd.Latencies, b.ms)
		}
	}
	return sd
}

// collect runs the window's two queries and returns every cluster of q's
// services, both sides; a cluster without series is an error.
func (s *Source) collect(ctx context.Context, q analysis.Query) (map[string]*clusterWindow, error) {
	if !q.To.After(q.From) {
		return nil, fmt.Errorf("prometheus: empty window [%s, %s)", q.From, q.To)
	}
	clusters := clustersOf(q)
	counts, err := s.query(ctx, RequestsQuery(clusters, q.To.Sub(q.From), s.matchers), q.To)
	if err != nil {
		return nil, err
	}
	buckets, err := s.query(ctx, LatencyQuery(clusters, q.To.Sub(q.From), s.matchers), q.To)
	if err != nil {
		return nil, err
	}
	out, err := countsByCluster(counts)
	if err != nil {
		return nil, err
	}
	lat, err := bucketsByCluster(buckets)
	if err != nil {
		return nil, err
	}
	for _, c := range clusters {
		cw := out[c]
		if cw == nil {
			return nil, fmt.Errorf("prometheus has no %s series of cluster %q in [%s, %s): is it scraping every Envoy's /stats/prometheus?",
				requestsMetric, c, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
		}
		cw.latency = lat[c]
		if cw.requests > cw.errors && len(cw.latency) == 0 {
			return nil, fmt.Errorf("prometheus has no %s series of cluster %q, though it served %d requests", latencyMetric, c, cw.requests)
		}
	}
	return out, nil
}

// clustersOf is the clusters of q's services, gray and stable of each.
func clustersOf(q analysis.Query) []string {
	var out []string
	for _, svc := range q.Services {
		out = append(out, plan.ClusterName(svc, q.Env), plan.ClusterName(svc, config.Stable))
	}
	return out
}

// RequestsQuery is the PromQL of the window's answers per cluster and
// response code class: increase over the window ending at the query's
// time, summed over every Envoy (every scraped instance) of the fleet.
func RequestsQuery(clusters []string, window time.Duration, matchers string) string {
	return fmt.Sprintf("sum by (%s, %s) (increase(%s{%s}[%s]))", clusterLabel, classLabel, requestsMetric, selector(clusters, matchers), rangeOf(window))
}

// LatencyQuery is the PromQL of the window's upstream_rq_time buckets
// per cluster, summed over the fleet.
func LatencyQuery(clusters []string, window time.Duration, matchers string) string {
	return fmt.Sprintf("sum by (%s, le) (increase(%s{%s}[%s]))", clusterLabel, latencyMetric, selector(clusters, matchers), rangeOf(window))
}

// selector matches exactly the named clusters (a cluster name holds "|",
// a regexp's alternation, so each is quoted), and the extra matchers.
func selector(clusters []string, matchers string) string {
	quoted := make([]string, len(clusters))
	for i, c := range clusters {
		quoted[i] = regexp.QuoteMeta(c)
	}
	return clusterLabel + "=~" + strconv.Quote(strings.Join(quoted, "|")) + matchers
}

// rangeOf is a window as a PromQL range, in whole milliseconds.
func rangeOf(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// sample is one series of an instant vector.
type sample struct {
	labels map[string]string
	value  float64
}

// apiResponse is the Prometheus HTTP API's envelope
// (/api/v1/query; Prometheus documentation, "HTTP API").
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []json.RawMessage `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// query evaluates an instant query at t.
func (s *Source) query(ctx context.Context, promql string, t time.Time) ([]sample, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	u := s.base.JoinPath("api", "v1", "query")
	u.RawQuery = url.Values{"query": {promql}, "time": {formatTime(t)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("prometheus: reading the answer: %w", err)
	}
	return parseResponse(resp.StatusCode, body)
}

// formatTime is t as the API's unix seconds, to the millisecond.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// parseResponse is an instant query's answer as samples; an error answer,
// one that is not an instant vector or a value that is not a number is an
// error.
func parseResponse(status int, body []byte) ([]sample, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus answered HTTP %d, not its API's JSON: %.200s", status, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus refused the query (HTTP %d, %s): %s", status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus answered a %q, not an instant vector", r.Data.ResultType)
	}
	out := make([]sample, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		v, err := sampleValue(res.Value)
		if err != nil {
			return nil, fmt.Errorf("prometheus series %v: %w", res.Metric, err)
		}
		out = append(out, sample{labels: res.Metric, value: v})
	}
	return out, nil
}

// sampleValue is the number of a [time, "value"] pair.
func sampleValue(pair []json.RawMessage) (float64, error) {
	if len(pair) != 2 {
		return 0, errors.New("value is not a [time, value] pair")
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("value %s is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("value %q is not a count", s)
	}
	return v, nil
}

// countsByCluster sums the answers per cluster: requests over every class,
// errors of class 5. increase() extrapolates to the window's edges, so
// counts are rounded.
func countsByCluster(samples []sample) (map[string]*clusterWindow, error) {
	out := map[string]*clusterWindow{}
	for _, s := range samples {
		name := s.labels[clusterLabel]
		if name == "" {
			return nil, fmt.Errorf("prometheus series %v has no %s", s.labels, clusterLabel)
		}
		c := out[name]
		if c == nil {
			c = &clusterWindow{}
			out[name] = c
		}
		n := int64(math.Round(s.value))
		c.requests += n
		if s.labels[classLabel] == errorClass {
			c.errors += n
		}
	}
	return out, nil
}

// bucketsByCluster turns each cluster's cumulative buckets (le) into the
// count of each bucket, each standing for the geometric middle of its
// bounds (its upper bound for the first, its lower one for +Inf).
func bucketsByCluster(samples []sample) (map[string][]bucketCount, error) {
	type bound struct{ le, cum float64 }
	byCluster := map[string][]bound{}
	for _, s := range samples {
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus series %v: le is not a number", s.labels)
		}
		name := s.labels[clusterLabel]
		byCluster[name] = append(byCluster[name], bound{le, s.value})
	}
	out := map[string][]bucketCount{}
	for name, bs := range byCluster {
		slices.SortFunc(bs, func(a, b bound) int { return cmpFloat(a.le, b.le) })
		var counts []bucketCount
		prevLE, prevCum := 0.0, 0.0
		for _, b := range bs {
			// Extrapolated increases of neighbouring buckets can dip; a
			// bucket never holds fewer than none.
			n := int64(math.Round(b.cum - prevCum))
			if n > 0 {
				counts = append(counts, bucketCount{ms: representative(prevLE, b.le), count: n})
			}
			prevLE, prevCum = b.le, max(prevCum, b.cum)
		}
		out[name] = counts
	}
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// representative is the duration that stands for a bucket (lo, hi].
func representative(lo, hi float64) float64 {
	switch {
	case math.IsInf(hi, 1):
		return lo
	case lo <= 0:
		return hi
	}
	return math.Sqrt(lo * hi)
}
