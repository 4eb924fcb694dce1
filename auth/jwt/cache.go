package jwt

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/tetherhq/tether/auth"
)

// cache remembers tokens verified recently, by their SHA-256, with the
// identity they gave and until when that stands: a reconnect storm presents
// the same tokens again, and their signatures need not be checked twice.
//
// A key is a cryptographic hash of the whole token, so an entry answers only
// the very token that was verified. An entry lasts until the token's exp (the
// clock is checked on every hit) and at most the cache's ttl after it was
// verified, so that a key removed from a JWKS stops admitting its tokens by
// then. Only identities are cached, never failures: a refused token is
// checked again each time.
//
// The cache is sharded, each shard a pair of generations: when a shard's
// current generation is full it becomes the previous one and the oldest is
// dropped, and a hit in the previous generation moves the entry back. That
// bounds the entries at about the size asked while keeping the ones in use.
type cache struct {
	ttl    time.Duration
	perGen int
	shards [cacheShards]cacheShard
}

const cacheShards = 16

type cacheShard struct {
	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	id    *auth.Identity // shared: copied out, never changed
	until time.Time      // the token's exp, or the end of the ttl if sooner
}

// newCache returns a cache of at most about size entries, each valid for at
// most ttl; nil when max is not positive.
func newCache(size int, ttl time.Duration) *cache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	c := &cache{ttl: ttl, perGen: max(size/(2*cacheShards), 1)}
	for i := range c.shards {
		c.shards[i].cur = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

func (c *cache) shard(key *[sha256.Size]byte) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint32(key[:4])%cacheShards]
}

// get returns a copy of the identity cached for key if it still stands at now.
func (c *cache) get(key *[sha256.Size]byte, now time.Time) (*auth.Identity, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	e, ok := sh.cur[*key]
	if !ok {
		if e, ok = sh.prev[*key]; ok {
			delete(sh.prev, *key)
			sh.put(*key, e, c.perGen)
		}
	}
	sh.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	id := *e.id
	return &id, true
}

// put caches id for key, verified at now.
func (c *cache) put(key *[sha256.Size]byte, id *auth.Identity, now time.Time) {
	e := cacheEntry{id: id, until: now.Add(c.ttl)}
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(e.until) {
		e.until = id.ExpiresAt
	}
	sh := c.shard(key)
	sh.mu.Lock()
	sh.put(*key, e, c.perGen)
	sh.mu.Unlock()
}

func (sh *cacheShard) put(key [sha256.Size]byte, e cacheEntry, perGen int) {
	if len(sh.cur) >= perGen {
		sh.prev, sh.cur = sh.cur, make(map[[sha256.Size]byte]cacheEntry, perGen)
	}
	sh.cur[key] = e
}

// hashOf is a cache key: the token's SHA-256.
func hashOf(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
