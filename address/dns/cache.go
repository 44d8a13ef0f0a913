package dns

import (
	"sync"
	"time"
)

// cacheEntry is one cached answer: positive if ans is set, not-found if not.
type cacheEntry struct {
	ans     *TXTAnswer // owned by the cache; handed out as copies
	server  string
	expires time.Time
}

// cache holds answers by lower-cased fully qualified name. When full, it
// drops expired entries, then the entry closest to expiry.
type cache struct {
	max int // set at creation

	// mu guards entries.
	mu      sync.Mutex
	entries map[string]cacheEntry
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[string]cacheEntry)}
}

// get returns a copy of the cached answer for key (with TTL set to the time it
// has left), or the not-found error, and whether an unexpired entry was found.
func (c *cache) get(key string, now time.Time) (*TXTAnswer, *LookupError, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, nil, false
	}
	left := e.expires.Sub(now)
	if left <= 0 {
		delete(c.entries, key)
		return nil, nil, false
	}
	if e.ans == nil {
		return nil, &LookupError{Name: key, Server: e.server, Err: ErrNotFound}, true
	}
	a := e.ans.clone()
	a.TTL = left
	return a, nil, true
}

// put caches e under key for ttl, capped at MaxCacheTTL.
func (c *cache) put(key string, e cacheEntry, now time.Time, ttl time.Duration) {
	e.expires = now.Add(min(ttl, MaxCacheTTL))
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[key] = e
}

// evictLocked makes room for one entry. c.mu must be held.
func (c *cache) evictLocked(now time.Time) {
	var (
		soonest    string
		soonestExp time.Time
	)
	for k, e := range c.entries {
		if !e.expires.After(now) {
			delete(c.entries, k)
			continue
		}
		if soonest == "" || e.expires.Before(soonestExp) {
			soonest, soonestExp = k, e.expires
		}
	}
	if len(c.entries) >= c.max {
		delete(c.entries, soonest)
	}
}

// flush empties the cache.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
