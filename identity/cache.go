package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by the SHA-256 of the token, never
// the token itself. It holds at most max entries and never returns an
// identity at or past its exp.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*Identity
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]*Identity, max)}
}

func (c *tokenCache) get(k [sha256.Size]byte, now time.Time) (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(id.Expiry) {
		delete(c.entries, k)
		return nil, false
	}
	return id, true
}

func (c *tokenCache) put(k [sha256.Size]byte, id *Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Evict one arbitrary entry (Go randomises map iteration): O(1),
		// bounded, and good enough for a cache whose misses cost one
		// signature check.
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = id
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
