package analysis

import (
	"encoding/json"
	"fmt"
	"math"
)

// Histogram bounds. Bucket 0 holds every duration up to HistogramMinMS;
// bucket i ≥ 1 holds (HistogramMinMS·γ^(i-1), HistogramMinMS·γ^i]; the
// last bucket also holds everything above HistogramMaxMS. With γ = 1.04 a
// bucket's geometric middle is within HistogramRelativeError of every
// duration in it, so any quantile read from a histogram — one node's or
// any merge of many — is within that relative error of the sample's exact
// quantile (same rank), for durations in [HistogramMinMS, HistogramMaxMS].
const (
	HistogramMinMS = 0.01
	HistogramMaxMS = 3_600_000
	histogramGamma = 1.04
	// HistogramRelativeError is √γ − 1 ≈ 0.0198, rounded up.
	HistogramRelativeError = 0.0199
)

// histogramBuckets is how many buckets cover [HistogramMinMS,
// HistogramMaxMS], plus the underflow bucket.
var histogramBuckets = 1 + int(math.Ceil(math.Log(HistogramMaxMS/HistogramMinMS)/math.Log(histogramGamma)))

var logGamma = math.Log(histogramGamma)

// bucketValues[i] is BucketValue(i), computed once.
var bucketValues = func() []float64 {
	v := make([]float64, histogramBuckets)
	v[0] = HistogramMinMS
	for i := 1; i < histogramBuckets; i++ {
		v[i] = HistogramMinMS * math.Pow(histogramGamma, float64(i)-0.5)
	}
	return v
}()

// Histogram counts durations (milliseconds) in fixed log-spaced buckets,
// the same on every node, so histograms merge by adding counts and lose
// nothing beyond the bucket width. The zero value is empty.
type Histogram struct {
	counts []uint64 // nil when empty; else histogramBuckets long
	total  uint64
}

// BucketOf is the bucket a duration in milliseconds falls in.
func BucketOf(ms float64) int {
	if !(ms > HistogramMinMS) { // also NaN
		return 0
	}
	i := int(math.Ceil(math.Log(ms/HistogramMinMS) / logGamma))
	return min(max(i, 1), histogramBuckets-1)
}

// BucketValue is the duration a bucket stands for: the geometric middle
// of its bounds (HistogramMinMS for the underflow bucket).
func BucketValue(i int) float64 {
	return bucketValues[min(max(i, 0), histogramBuckets-1)]
}

// Add counts one duration.
func (h *Histogram) Add(ms float64) { h.AddN(BucketOf(ms), 1) }

// AddN counts n durations in bucket i.
func (h *Histogram) AddN(i int, n uint64) {
	if n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histogramBuckets)
	}
	h.counts[i] += n
	h.total += n
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, n := range o.counts {
		h.AddN(i, n)
	}
}

// Count is how many durations h holds.
func (h *Histogram) Count() uint64 { return h.total }

// Above is how many durations lie in buckets above bucket i.
func (h *Histogram) Above(i int) uint64 {
	var n uint64
	for j := i + 1; j < len(h.counts); j++ {
		n += h.counts[j]
	}
	return n
}

// QuantileBucket is the bucket of the q-quantile (0–1): the smallest
// bucket with at least ⌈q·count⌉ durations at or below it; -1 when empty.
func (h *Histogram) QuantileBucket(q float64) int {
	if h.total == 0 {
		return -1
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return i
		}
	}
	return len(h.counts) - 1
}

// Quantile is the q-quantile in milliseconds, NaN when empty.
func (h *Histogram) Quantile(q float64) float64 {
	i := h.QuantileBucket(q)
	if i < 0 {
		return math.NaN()
	}
	return BucketValue(i)
}

// histogramJSON is a histogram on the wire: the counts from the first
// non-empty bucket to the last, so a typical window ships a few dozen
// numbers.
type histogramJSON struct {
	First  int      `json:"first"`
	Counts []uint64 `json:"counts"`
}

// MarshalJSON implements json.Marshaler.
func (h Histogram) MarshalJSON() ([]byte, error) {
	lo, hi := 0, len(h.counts)
	for lo < hi && h.counts[lo] == 0 {
		lo++
	}
	for hi > lo && h.counts[hi-1] == 0 {
		hi--
	}
	return json.Marshal(histogramJSON{First: lo, Counts: append([]uint64{}, h.counts[lo:hi]...)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histogramJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.First < 0 || w.First+len(w.Counts) > histogramBuckets {
		return fmt.Errorf("histogram: buckets %d..%d outside 0..%d", w.First, w.First+len(w.Counts), histogramBuckets-1)
	}
	*h = Histogram{}
	for i, n := range w.Counts {
		h.AddN(w.First+i, n)
	}
	return nil
}
