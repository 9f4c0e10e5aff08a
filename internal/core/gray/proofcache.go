package gray

import (
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/core/bounded"
)

// proofCache remembers the proofs a Policy handed out, so a caller that
// comes back without its proof (a client that ignores x-graymesh-proof,
// or one whose proof Envoy did not route on) costs graymesh a lookup, not
// another Ed25519 signature: about 293,000 instructions, more than the
// rest of its decision (bench-ir, BenchmarkEd25519Sign). A Policy holds
// one config version, so every proof it caches names the version in
// force; a new config compiles a new Policy, with an empty cache.
type proofCache struct {
	mu      sync.Mutex
	max     int
	entries map[proofKey]cachedProof
}

// proofKey is what a proof says of its caller and decision besides the
// version: the token end it is bound to, the subject its caller hash is
// of, and the decision.
type proofKey struct {
	token, subject, env, release string
}

type cachedProof struct {
	proof   string
	expires time.Time
}

// proofCacheSize bounds the cache: the callers of a busy edge within one
// proof TTL; past it, a caller costs a signature again.
const proofCacheSize = 10000

func newProofCache(max int) *proofCache {
	return &proofCache{max: max, entries: make(map[proofKey]cachedProof)}
}

// get returns k's cached proof when a fresh one would expire at exp and
// the cached one expires no more than slack before that: a proof handed
// out again keeps at least all but slack of the life a new one would get.
func (c *proofCache) get(k proofKey, exp time.Time, slack time.Duration) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return "", false
	}
	if e.expires.Before(exp.Add(-slack)) {
		delete(c.entries, k)
		return "", false
	}
	return e.proof, true
}

// put remembers k's proof; a full cache evicts an arbitrary entry (its
// miss costs one signature).
func (c *proofCache) put(k proofKey, proof string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bounded.Put(c.entries, c.max, k, cachedProof{proof: proof, expires: expires})
}
