package identity

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/core/bounded"
)

// tokenCache remembers verified tokens. An entry is found by a keyed
// 64-bit hash of the token (maphash, seeded per cache, so nobody outside
// can aim at a slot) and served only when the token stored with it is the
// presented token byte for byte: a hash collision is a miss, never someone
// else's identity. Hashing is a few hundred instructions where SHA-256 of
// the token on every hit was thousands, and allocation-free. The price:
// the cache holds the verified tokens themselves (at most max of them,
// each at most MaxTokenBytes and only until its exp), where it held their
// digests. It never returns an identity at or past its exp.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	seed    maphash.Seed
	entries map[uint64]cacheEntry
}

type cacheEntry struct {
	token string
	id    *Identity
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, seed: maphash.MakeSeed(), entries: make(map[uint64]cacheEntry, max)}
}

func (c *tokenCache) key(token string) uint64 { return maphash.String(c.seed, token) }

func (c *tokenCache) get(token string, now time.Time) (*Identity, bool) {
	k := c.key(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || e.token != token {
		return nil, false
	}
	if !now.Before(e.id.Expiry) {
		delete(c.entries, k)
		return nil, false
	}
	return e.id, true
}

// put remembers token's identity; a token whose hash collides with a
// cached one's replaces it.
func (c *tokenCache) put(token string, id *Identity) {
	k := c.key(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	// A miss costs one signature check.
	bounded.Put(c.entries, c.max, k, cacheEntry{token: token, id: id})
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
