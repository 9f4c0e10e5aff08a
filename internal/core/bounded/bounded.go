// Package bounded keeps caches bounded: a map that never grows past its
// limit, whatever the traffic.
package bounded

// Put stores v under k in m, which holds at most max entries: when m is
// full and k is new, one arbitrary entry is evicted first (Go randomises
// map iteration). O(1) and allocation-free, for caches whose miss costs
// one recomputation (a signature check, a signature). The caller holds
// m's lock.
func Put[K comparable, V any](m map[K]V, max int, k K, v V) {
	if _, replaces := m[k]; !replaces && len(m) >= max {
		for victim := range m {
			delete(m, victim)
			break
		}
	}
	m[k] = v
}
