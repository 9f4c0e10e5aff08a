package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantileWithinStatedError: every quantile read from a
// histogram is within HistogramRelativeError of the exact sample quantile
// of the same rank, on samples spread over six orders of magnitude.
func TestHistogramQuantileWithinStatedError(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 50; trial++ {
		n := 1 + rng.IntN(5000)
		median := math.Pow(10, rng.Float64()*6-2) // 0.01 ms to 10 s
		var h Histogram
		x := make([]float64, n)
		for i := range x {
			x[i] = math.Max(HistogramMinMS, median*math.Exp(rng.NormFloat64()))
			h.Add(x[i])
		}
		slices.Sort(x)
		for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
			rank := max(1, int(math.Ceil(q*float64(n))))
			exact, got := x[rank-1], h.Quantile(q)
			if rel := math.Abs(got-exact) / exact; rel > HistogramRelativeError {
				t.Fatalf("trial %d n %d q %g: %g vs exact %g (%.4f relative)", trial, n, q, got, exact, rel)
			}
		}
	}
	var empty Histogram
	if !math.IsNaN(empty.Quantile(0.5)) || empty.QuantileBucket(0.5) != -1 {
		t.Fatal("an empty histogram has a quantile")
	}
}

func TestHistogramJSON(t *testing.T) {
	var h Histogram
	for _, ms := range []float64{0.5, 3, 3, 250, 1e9} {
		h.Add(ms)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, h) {
		t.Fatalf("round trip %s: %v %+v", b, err, back)
	}
	if err := json.Unmarshal([]byte(`{"first": 100000, "counts": [1]}`), &back); err == nil {
		t.Fatal("a bucket out of range was accepted")
	}
}

// TestDistinctCountsTheUnion: three nodes' caller sets, overlapping,
// merge into an estimate of their union within four standard errors,
// and small sets are counted exactly.
func TestDistinctCountsTheUnion(t *testing.T) {
	var nodes [3]Distinct
	for i := 0; i < 30_000; i++ {
		caller := fmt.Sprintf("caller-%d", i)
		nodes[i%3].Add(caller)
		if i%10 == 0 {
			nodes[(i+1)%3].Add(caller) // also seen on another node
		}
	}
	var union Distinct
	for _, n := range nodes {
		union.Merge(n)
	}
	if got := union.Count(); math.Abs(float64(got)-30_000)/30_000 > 4*DistinctStandardError {
		t.Fatalf("union of 30000 callers estimated %d", got)
	}
	var small Distinct
	for i := 0; i < 20; i++ {
		small.Add(fmt.Sprintf("c%d", i%10))
	}
	if got := small.Count(); got != 10 {
		t.Fatalf("10 callers counted %d", got)
	}
	if (&Distinct{}).Count() != 0 {
		t.Fatal("an empty set is not empty")
	}
}

// randomSamples are n requests of shop and cart, on gray and stable, over
// a few routes.
func randomSamples(rng *rand.Rand, n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{
			Service:  []string{"shop", "cart"}[rng.IntN(2)],
			Env:      []string{"gray", "stable"}[rng.IntN(2)],
			Failed:   rng.IntN(20) == 0,
			Duration: time.Duration(math.Exp(3+rng.NormFloat64()) * float64(time.Millisecond)),
			Caller:   fmt.Sprintf("c%d", rng.IntN(500)),
			Route:    fmt.Sprintf("/r%d", rng.IntN(4)),
		}
	}
	return out
}

func evidenceOf(q Query, samples []Sample) *Evidence {
	e := NewEvidence(q)
	for _, s := range samples {
		e.Add(s)
	}
	return e
}

// TestMergeIsLosslessAssociativeAndCommutative: the merge of three nodes'
// evidence is the evidence of all their requests taken together, whatever
// the order and grouping of the merges.
func TestMergeIsLosslessAssociativeAndCommutative(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	t0 := time.Unix(1000, 0)
	q := Query{Release: "shop-v2", Env: "gray", Services: []string{"shop", "cart"}, From: t0, To: t0.Add(30 * time.Second)}
	all := randomSamples(rng, 3000)
	a, b, c := evidenceOf(q, all[:1000]), evidenceOf(q, all[1000:1800]), evidenceOf(q, all[1800:])
	c.From = t0.Add(-time.Second)
	must := func(e *Evidence, err error) *Evidence {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ab := must(Merge(a, b))
	left := must(Merge(ab, c))
	right := must(Merge(a, must(Merge(b, c))))
	if !reflect.DeepEqual(left, right) {
		t.Fatal("(a+b)+c differs from a+(b+c)")
	}
	if !reflect.DeepEqual(ab, must(Merge(b, a))) {
		t.Fatal("a+b differs from b+a")
	}
	whole := evidenceOf(q, all)
	whole.From, whole.Nodes = c.From, 3
	if !reflect.DeepEqual(left, whole) {
		t.Fatal("the merge of three nodes differs from the evidence of all their requests")
	}
	canary := evidenceOf(q, []Sample{{Service: "shop", Env: "canary"}})
	if n := canary.Services["shop"]; n.Gray.Requests+n.Stable.Requests != 0 {
		t.Fatalf("a canary request counted: %+v", n)
	}
	if left.Services["shop"].Gray.Requests == 0 || len(left.Services["shop"].Routes) != 4 {
		t.Fatalf("merged %+v", left.Services["shop"])
	}
	other := NewEvidence(Query{Release: "cart-v3", Env: "gray"})
	if _, err := Merge(a, other); err == nil {
		t.Fatal("evidence of two releases merged")
	}
}

func TestEvidenceJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	e := evidenceOf(Query{Release: "r", Env: "gray", Services: []string{"shop"}, From: time.Unix(5, 0).UTC()}, randomSamples(rng, 500))
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Evidence
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, e) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestRouteGroupsAreBounded(t *testing.T) {
	e := NewEvidence(Query{Release: "r", Env: "gray", Services: []string{"shop"}})
	for i := 0; i < 3*MaxRoutes; i++ {
		e.Add(Sample{Service: "shop", Env: "gray", Route: fmt.Sprintf("/r%d", i)})
	}
	routes := e.Services["shop"].Routes
	if len(routes) != MaxRoutes || routes[OtherRoutes].Gray.Requests != 2*MaxRoutes+1 {
		t.Fatalf("%d groups, other %+v", len(routes), routes[OtherRoutes])
	}
	for path, want := range map[string]string{
		"/cart/42/items?x=1": "/cart/:id",
		"/":                  "/",
		"/api/v1/orders":     "/api/v1",
		"/u/0f8fad5b-d9cb-469f-a165-70867728950e": "/u/:id",
		"/checkout#top": "/checkout",
		"/beef":         "/beef", // short hex is a word
	} {
		if got := RouteGroup(path); got != want {
			t.Errorf("RouteGroup(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestCollectorEvidence(t *testing.T) {
	c := NewCollector()
	t0 := time.Unix(1000, 0)
	q := Query{Release: "shop-v2", Env: "gray", Services: []string{"shop"}, From: t0, To: t0.Add(time.Second)}
	c.Watch(q)
	for i := 0; i < 10; i++ {
		c.Observe(Sample{Service: "shop", Env: "gray", Duration: time.Duration(i+1) * time.Millisecond, Caller: "a", Route: "/a"})
		c.Observe(Sample{Service: "shop", Env: "stable", Failed: i%5 == 0, Caller: "b", Route: "/b"})
	}
	c.Observe(Sample{Service: "shop", Env: "canary"})
	e, err := c.CollectEvidence(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	s := e.Services["shop"]
	if s.Gray.Requests != 10 || s.Stable.Errors != 2 || s.Gray.Latency.Count() != 10 || s.Stable.Latency.Count() != 8 ||
		s.Callers.Count() != 2 || s.Routes["/b"].Stable.Errors != 2 || !e.From.Equal(t0) || !e.To.Equal(q.To) {
		t.Fatalf("evidence %+v", s)
	}
	q.From, q.To = q.To, q.To.Add(time.Second)
	if e, _ = c.CollectEvidence(context.Background(), q); e.Services["shop"].Gray.Requests != 0 || !e.From.Equal(q.From) {
		t.Fatalf("second window %+v", e.Services["shop"])
	}
}
