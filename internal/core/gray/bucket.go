package gray

import "github.com/cespare/xxhash/v2"

// Buckets is the size of the bucket space: one bucket is 0.01%.
const Buckets = 10000

// Bucket maps key into 0..Buckets-1 for a release salt. The algorithm,
// published in docs/bucketing.md, is:
//
//	h      = xxHash64(salt + "\x00" + key)   (seed 0)
//	bucket = ((h >> 32) * 10000) >> 32
//
// A key is in a release at p percent when bucket < p*100, so raising p
// only ever adds keys. The NUL separator keeps ("ab","c") and ("a","bc")
// apart. The top 32 bits scaled by multiplication avoid the modulo bias and
// the correlated low digits that "uid % 100" suffers from.
func Bucket(salt, key string) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(salt)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(key)
	return int(((d.Sum64() >> 32) * Buckets) >> 32)
}
