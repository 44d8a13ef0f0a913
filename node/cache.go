package node

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/dht"
)

// Bounds of the node's cache of verified keys and resolutions.
const (
	cacheTTL  = time.Minute
	cacheSize = 4096
)

// cache keeps keys and email resolutions the node verified recently, so
// a burst of mail to or from one contact costs one verification, not one
// per message (and go-crypto's validity cache inside a Key is reused).
// Entries live cacheTTL: a revocation is noticed within that time.
type cache struct {
	now func() time.Time

	mu      sync.Mutex // guards entries
	entries map[string]cacheEntry
}

type cacheEntry struct {
	key *address.Key
	res *dht.Resolution
	err error
	at  time.Time
}

func newCache(now func() time.Time) *cache {
	return &cache{now: now, entries: map[string]cacheEntry{}}
}

func (c *cache) get(k string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok && c.now().Sub(e.at) > cacheTTL {
		delete(c.entries, k)
		ok = false
	}
	return e, ok
}

func (c *cache) put(k string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= cacheSize {
		// Drop the expired, then anything: the map's order is random.
		now := c.now()
		for key, old := range c.entries {
			if now.Sub(old.at) > cacheTTL || len(c.entries) >= cacheSize {
				delete(c.entries, key)
			}
			if len(c.entries) < cacheSize*3/4 {
				break
			}
		}
	}
	e.at = c.now()
	c.entries[k] = e
}

// lookupKey is Resolver.LookupKey through the cache.
func (n *Node) lookupKey(ctx context.Context, f address.Fingerprint) (*address.Key, error) {
	k := "k:" + f.String()
	if e, ok := n.cache.get(k); ok {
		return e.key, nil
	}
	key, err := n.resolver.LookupKey(ctx, f)
	if err != nil {
		return nil, err
	}
	n.cache.put(k, cacheEntry{key: key})
	return key, nil
}

// resolveEmail is Resolver.ResolveEmail through the cache: resolutions
// that produced a key (including revoked ones and ones without a reach
// record) are kept; failures are not.
func (n *Node) resolveEmail(ctx context.Context, e address.Email) (*dht.Resolution, error) {
	k := "e:" + e.String()
	if c, ok := n.cache.get(k); ok {
		return c.res, c.err
	}
	res, err := n.resolver.ResolveEmail(ctx, e)
	if res != nil && (err == nil || errors.Is(err, dht.ErrRevoked) || errors.Is(err, dht.ErrNoReach)) {
		n.cache.put(k, cacheEntry{res: res, err: err})
	}
	return res, err
}

// recipientKey returns the key a queued message was encrypted to, parsed
// once per recipient.
func (n *Node) recipientKey(f string) (*address.Key, error) {
	k := "p:" + f
	if e, ok := n.cache.get(k); ok {
		return e.key, nil
	}
	b, err := n.queue.RecipientKey(f)
	if err != nil {
		return nil, err
	}
	key, err := address.ReadKey(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if key.Fingerprint().String() != f {
		return nil, errors.New("node: queued recipient key does not match its fingerprint")
	}
	n.cache.put(k, cacheEntry{key: key})
	return key, nil
}
