package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

// TestFisherPublishedValues pins Fisher's exact test to values that can be
// checked by hand: the lady tasting tea (Fisher 1935, one-sided p =
// 17/70), a perfect 4×4 split (1/70), and hypergeometric upper tails
// summed from binomial coefficients.
func TestFisherPublishedValues(t *testing.T) {
	tests := []struct {
		name           string
		f1, n1, f2, n2 int
		want           float64
	}{
		{"lady tasting tea 3/4 vs 1/4", 3, 4, 1, 4, 17.0 / 70},
		{"4/4 vs 0/4", 4, 4, 0, 4, 1.0 / 70},
		{"5/50 vs 0/50", 5, 50, 0, 50, 0.028142247214412164},
		{"7/30 vs 1/30", 7, 30, 1, 30, 0.026157421929391026},
		{"10/200 vs 0/200", 10, 200, 0, 200, 0.0008702588772449783},
		{"0 failures on the first side", 0, 10, 3, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			near(t, "p", fisherGreater(tt.f1, tt.n1, tt.f1+tt.f2, tt.n1+tt.n2), tt.want, 1e-9)
		})
	}
}

// TestMoreFailures checks the choice of test and the z test against the
// textbook pooled z: (p1-p2)/sqrt(p(1-p)(1/n1+1/n2)), upper tail of the
// standard normal.
func TestMoreFailures(t *testing.T) {
	tests := []struct {
		name           string
		f1, n1, f2, n2 int
		method         string
		stat, p        float64
	}{
		{"45% vs 30% of 100", 45, 100, 30, 100, MethodZ, 2.1908902300206647, 0.014229868458155215},
		{"6% vs 1% of 1000", 60, 1000, 10, 1000, MethodZ, 6.083553443658605, 5.877385245156574e-10},
		{"small counts go to Fisher", 3, 4, 1, 4, MethodFisher, 3, 17.0 / 70},
		{"no failure anywhere", 0, 500, 0, 500, MethodZ, 0, 1},
		{"an empty side", 3, 10, 0, 0, MethodZ, 0, 1},
		{"gray better: p near 1", 0, 1000, 30, 1000, MethodZ, -5.5, 0.99999998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MoreFailures(tt.f1, tt.n1, tt.f2, tt.n2)
			if got.Method != tt.method {
				t.Fatalf("method %s, want %s", got.Method, tt.method)
			}
			near(t, "p", got.P, tt.p, 1e-7)
			if tt.method == MethodZ && tt.stat != -5.5 {
				near(t, "z", got.Statistic, tt.stat, 1e-9)
			}
		})
	}
}

// TestMannWhitneyPublishedValues pins the U test to the exact null
// distribution tabulated by Mann and Whitney (1947): with n1 = n2 = 3, the
// first sample entirely above the second has P = 1/20; with n1 = n2 = 4,
// P(U ≥ 16) = 1/70, P(U ≥ 15) = 2/70, P(U ≥ 14) = 4/70.
func TestMannWhitneyPublishedValues(t *testing.T) {
	tests := []struct {
		name   string
		x1, x2 []float64
		u, p   float64
	}{
		{"3 above 3", []float64{4, 5, 6}, []float64{1, 2, 3}, 9, 1.0 / 20},
		{"4 above 4", []float64{5, 6, 7, 8}, []float64{1, 2, 3, 4}, 16, 1.0 / 70},
		{"one swap", []float64{4, 6, 7, 8}, []float64{1, 2, 3, 5}, 15, 2.0 / 70},
		{"U = 14", []float64{3, 6, 7, 8}, []float64{1, 2, 4, 5}, 14, 4.0 / 70},
		{"first sample below", []float64{1, 2, 3}, []float64{4, 5, 6}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Slower(tt.x1, tt.x2)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "U", r.U, tt.u, 0)
			near(t, "p", r.P, tt.p, 1e-12)
		})
	}
	if _, err := Slower([]float64{1, 1}, []float64{1, 1}); err == nil {
		t.Error("all-equal samples gave no error")
	}
}

func TestHodgesLehmann(t *testing.T) {
	// Differences of {4,5,6} − {1,2,3}: 1,2,2,3,3,3,4,4,5 → median 3.
	near(t, "shift", HodgesLehmann([]float64{4, 5, 6}, []float64{1, 2, 3}), 3, 0)
	// Even count: {1,2} − {0}: 1, 2 → 1.5.
	near(t, "shift", HodgesLehmann([]float64{1, 2}, []float64{0}), 1.5, 0)
	// A constant shift is recovered whatever the spread.
	x2 := []float64{3, 9, 14, 20, 41, 60}
	x1 := make([]float64, len(x2))
	for i, v := range x2 {
		x1[i] = v + 50
	}
	near(t, "shift", HodgesLehmann(x1, x2), 50, 0)
}

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	near(t, "p50", Percentile(s, 0.5), 5, 0)
	near(t, "p90", Percentile(s, 0.9), 9, 0)
	near(t, "p99", Percentile(s, 0.99), 10, 0)
	near(t, "median", Median(s), 5.5, 0)
	if !math.IsNaN(Percentile(nil, 0.5)) {
		t.Error("percentile of nothing is a number")
	}
}

// TestHodgesLehmannMatchesSort checks the selection against a full sort of
// the pairwise differences, on samples with and without ties.
func TestHodgesLehmannMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 200; trial++ {
		x1, x2 := make([]float64, 1+rng.IntN(30)), make([]float64, 1+rng.IntN(30))
		for i := range x1 {
			x1[i] = float64(rng.IntN(8))
		}
		for i := range x2 {
			x2[i] = rng.NormFloat64()
		}
		if trial%2 == 0 { // ties on both sides: the runs path
			x1 = append(x1, x1...)
			for i := range x2 {
				x2[i] = float64(rng.IntN(5))
			}
			slices.Sort(x1)
			slices.Sort(x2)
		}
		var d []float64
		for _, a := range x1 {
			for _, b := range x2 {
				d = append(d, a-b)
			}
		}
		slices.Sort(d)
		want := d[len(d)/2]
		if len(d)%2 == 0 {
			want = (d[len(d)/2-1] + d[len(d)/2]) / 2
		}
		if got := HodgesLehmann(x1, x2); got != want {
			t.Fatalf("trial %d: %v, want %v", trial, got, want)
		}
	}
}
