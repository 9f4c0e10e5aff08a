package analysis

import (
	"errors"
	"math"
	"slices"

	"github.com/aclements/go-moremath/stats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Test methods, as reports name them.
const (
	MethodFisher      = "fisher-exact"
	MethodZ           = "two-proportion-z"
	MethodMannWhitney = "mann-whitney-u"
)

// fisherBelowExpected is the smallest expected cell count at which the
// normal approximation of the two-proportion z test is trusted (the usual
// rule of five); below it, Fisher's exact test is used.
const fisherBelowExpected = 5

// ProportionTest is a one-sided test that the first group fails more often
// than the second.
type ProportionTest struct {
	Method string
	// Statistic is z for the z test and the first group's failures for
	// Fisher's test.
	Statistic float64
	P         float64
}

// MoreFailures tests whether group 1 (f1 failures in n1) fails more often
// than group 2 (f2 in n2): the pooled two-proportion z test, or Fisher's
// exact test when any expected cell count is below five. With no failure
// at all, or an empty group, there is no evidence: P is 1.
func MoreFailures(f1, n1, f2, n2 int) ProportionTest {
	n, f := n1+n2, f1+f2
	if n1 == 0 || n2 == 0 || f == 0 || f == n {
		return ProportionTest{Method: MethodZ, P: 1}
	}
	// The smallest expected cell is the smaller group's share of the rarer
	// outcome.
	minExpected := float64(min(n1, n2)) * float64(min(f, n-f)) / float64(n)
	if minExpected < fisherBelowExpected {
		return ProportionTest{Method: MethodFisher, Statistic: float64(f1), P: fisherGreater(f1, n1, f, n)}
	}
	p1, p2 := float64(f1)/float64(n1), float64(f2)/float64(n2)
	pooled := float64(f) / float64(n)
	se := math.Sqrt(pooled * (1 - pooled) * (1/float64(n1) + 1/float64(n2)))
	z := (p1 - p2) / se
	return ProportionTest{Method: MethodZ, Statistic: z, P: distuv.UnitNormal.Survival(z)}
}

// fisherGreater is the one-sided p-value of Fisher's exact test: given the
// margins, the chance that group 1 (n1 of n requests) holds f1 or more of
// the f failures — the upper tail of the hypergeometric distribution.
func fisherGreater(f1, n1, f, n int) float64 {
	if f1 <= 0 {
		return 1
	}
	d := stats.HypergeometicDist{N: n, K: f, Draws: n1}
	return math.Max(0, math.Min(1, 1-d.CDF(float64(f1-1))))
}

// ShiftTest is a one-sided Mann-Whitney U test that the first sample tends
// to be larger, with the Hodges–Lehmann estimate of the shift.
type ShiftTest struct {
	U float64
	P float64
	// Shift is the median of all pairwise differences x1[i] - x2[j].
	Shift float64
}

// errNoVariation is returned when every value of both samples is equal:
// there is no ranking to test, and no shift.
var errNoVariation = errors.New("every value of both samples is equal")

// Slower tests whether x1 tends to be larger than x2 (one-sided
// Mann-Whitney U; exact for small samples, normal approximation with tie
// and continuity corrections above, as go-moremath's stats package does)
// and estimates by how much (Hodges–Lehmann).
func Slower(x1, x2 []float64) (ShiftTest, error) {
	if len(x1) == 0 || len(x2) == 0 {
		return ShiftTest{P: 1}, stats.ErrSampleSize
	}
	r, err := stats.MannWhitneyUTest(x1, x2, stats.LocationGreater)
	if errors.Is(err, stats.ErrSamplesEqual) {
		return ShiftTest{P: 1}, errNoVariation
	}
	if err != nil {
		return ShiftTest{P: 1}, err
	}
	return ShiftTest{U: r.U, P: r.P, Shift: HodgesLehmann(x1, x2)}, nil
}

// HodgesLehmann is the median of the pairwise differences x1[i] - x2[j],
// the shift estimate that goes with the Mann-Whitney U test. It takes
// len(x1)*len(x2) memory: callers keep samples bounded.
func HodgesLehmann(x1, x2 []float64) float64 {
	if len(x1) == 0 || len(x2) == 0 {
		return math.NaN()
	}
	if r1, r2 := runs(x1), runs(x2); r1 != nil && r2 != nil && len(r1)*len(r2) <= len(x1)*len(x2)/8 {
		return hodgesLehmannRuns(r1, r2, len(x1)*len(x2))
	}
	d := make([]float64, 0, len(x1)*len(x2))
	for _, a := range x1 {
		for _, b := range x2 {
			d = append(d, a-b)
		}
	}
	m := len(d) / 2
	hi := nth(d, m)
	if len(d)%2 == 1 {
		return hi
	}
	// The lower middle is the largest value left of m after selection.
	return (slices.Max(d[:m]) + hi) / 2
}

// run is a value repeated count times in a sorted sample.
type run struct {
	value float64
	count int
}

// runs is a sorted sample's runs of equal values; nil when x is not
// sorted.
func runs(x []float64) []run {
	if !slices.IsSorted(x) {
		return nil
	}
	var out []run
	for _, v := range x {
		if n := len(out); n > 0 && out[n-1].value == v {
			out[n-1].count++
			continue
		}
		out = append(out, run{v, 1})
	}
	return out
}

// hodgesLehmannRuns is HodgesLehmann on samples with many ties (durations
// read from histogram buckets): the same median of the n pairwise
// differences, from one weighted difference per pair of runs.
func hodgesLehmannRuns(r1, r2 []run, n int) float64 {
	d := make([]run, 0, len(r1)*len(r2))
	for _, a := range r1 {
		for _, b := range r2 {
			d = append(d, run{a.value - b.value, a.count * b.count})
		}
	}
	if n%2 == 1 {
		return weightedNth(d, n/2)
	}
	return (weightedNth(slices.Clone(d), n/2-1) + weightedNth(d, n/2)) / 2
}

// weightedNth is the k-th smallest (0-based) of the values of d, each
// counted as often as its count says: quickselect on weights, reordering
// d.
func weightedNth(d []run, k int) float64 {
	for {
		pivot := d[len(d)/2].value
		var less, equal int
		lt, gt := 0, len(d)
		for i := 0; i < gt; {
			switch {
			case d[i].value < pivot:
				less += d[i].count
				d[i], d[lt] = d[lt], d[i]
				lt++
				i++
			case d[i].value > pivot:
				gt--
				d[i], d[gt] = d[gt], d[i]
			default:
				equal += d[i].count
				i++
			}
		}
		switch {
		case k < less:
			d = d[:lt]
		case k < less+equal:
			return pivot
		default:
			k -= less + equal
			d = d[gt:]
		}
	}
}

// nth reorders d so that d[k] is the value a sort would put there, with
// nothing larger before it and nothing smaller after (quickselect with a
// middle pivot and three-way partition: linear on average, and on runs of
// equal values).
func nth(d []float64, k int) float64 {
	lo, hi := 0, len(d)-1
	for lo < hi {
		pivot := d[lo+(hi-lo)/2]
		// d[lo:lt] < pivot, d[lt:i] == pivot, d[gt+1:hi+1] > pivot.
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch {
			case d[i] < pivot:
				d[lt], d[i] = d[i], d[lt]
				lt++
				i++
			case d[i] > pivot:
				d[i], d[gt] = d[gt], d[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt - 1
		case k > gt:
			lo = gt + 1
		default:
			return pivot
		}
	}
	return d[k]
}

// Percentile is the p-quantile (0–1) of a sorted sample, the smallest value
// with at least that share of the sample at or below it; NaN when empty.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return stat.Quantile(p, stat.Empirical, sorted, nil)
}

// Median of a sorted sample; NaN when empty.
func Median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
