package server

import (
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// Limits of the agent token cache.
const (
	// tokenCacheTTL is how long a looked-up agent token is trusted without
	// asking the store again. An agent token revoked through another
	// server sharing the database keeps working on this one for up to this
	// long; revoking it through this server takes effect at once.
	tokenCacheTTL = 5 * time.Second
	// tokenCacheSize bounds the cached tokens; when it is reached the cache
	// starts over.
	tokenCacheSize = 1024
)

// tokenCache remembers recently verified agent tokens by hash, so that an
// agent's frequent calls (lease, reports, heartbeats) do not each read the
// token from the store. Personal tokens are not cached: their user may
// change (admin flag, deletion) at any time. It is safe for concurrent
// use.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]tokenEntry
}

// tokenEntry is a cached token and when it was read from the store.
type tokenEntry struct {
	token *store.Token
	read  time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: map[string]tokenEntry{}}
}

// get returns the token with the given hash if it was read from the store
// less than tokenCacheTTL before now. The token must not be modified.
func (c *tokenCache) get(hash []byte, now time.Time) *store.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(hash)]
	if !ok {
		return nil
	}
	if now.Sub(e.read) >= tokenCacheTTL {
		delete(c.entries, string(hash))
		return nil
	}
	return e.token
}

// put caches t, an agent token read from the store at now, under hash.
func (c *tokenCache) put(hash []byte, t *store.Token, now time.Time) {
	if t.Kind != store.TokenAgent && t.Kind != store.TokenNode {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= tokenCacheSize {
		clear(c.entries)
	}
	c.entries[string(hash)] = tokenEntry{token: t, read: now}
}

// clear forgets every cached token; call it when a token is revoked.
func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
