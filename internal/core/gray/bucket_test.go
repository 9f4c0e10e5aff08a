package gray

import (
	"strconv"
	"testing"
)

// bucketVectors pin the bucketing algorithm; docs/bucketing.md publishes the
// same table. A change here moves users between environments in production.
var bucketVectors = []struct {
	salt, key string
	bucket    int
}{
	{"vectors", "alice", 9835},
	{"vectors", "bob", 5442},
	{"vectors", "carol", 4728},
	{"vectors", "user-1", 8901},
	{"vectors", "user-2", 9190},
	{"vectors", "10000001", 5240},
	{"vectors", "10000002", 9033},
	{"shop-v2", "alice", 2941},
	{"shop-v2", "bob", 1195},
	{"", "", 9109},
}

func TestBucketVectors(t *testing.T) {
	for _, v := range bucketVectors {
		if got := Bucket(v.salt, v.key); got != v.bucket {
			t.Errorf("Bucket(%q, %q) = %d, want %d", v.salt, v.key, got, v.bucket)
		}
	}
}

func TestBucketSaltSeparator(t *testing.T) {
	if Bucket("ab", "c") == Bucket("a", "bc") && Bucket("ab", "cd") == Bucket("a", "bcd") {
		t.Fatal("salt and key are not separated")
	}
}

// TestBucketDistribution: 100,000 sequential ids (the worst case for
// "uid % 100") at 10% land within 10 ± 0.5%.
func TestBucketDistribution(t *testing.T) {
	const n = 100000
	for _, salt := range []string{"shop-v2", "release-2026-11"} {
		in := 0
		for i := 0; i < n; i++ {
			if Bucket(salt, strconv.Itoa(10000000+i)) < 1000 {
				in++
			}
		}
		share := float64(in) / n * 100
		if share < 9.5 || share > 10.5 {
			t.Errorf("salt %q: %.3f%% admitted at 10%%, want 10 ± 0.5", salt, share)
		}
	}
}

// TestBucketMonotonic: every subject in at p stays in at every p' > p.
func TestBucketMonotonic(t *testing.T) {
	steps := []float64{0.01, 1, 5, 10, 20, 33.33, 50, 80, 100}
	for i := 0; i < 20000; i++ {
		b := Bucket("ramp", "user-"+strconv.Itoa(i))
		wasIn := false
		for _, p := range steps {
			in := b < int(p*100+0.5)
			if wasIn && !in {
				t.Fatalf("user-%d (bucket %d) left at %v%%", i, b, p)
			}
			wasIn = in
		}
		if !wasIn {
			t.Fatalf("user-%d (bucket %d) not in at 100%%", i, b)
		}
	}
}

func TestBucketRange(t *testing.T) {
	for i := 0; i < 50000; i++ {
		if b := Bucket("r", strconv.Itoa(i)); b < 0 || b >= Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
	}
}
