// Package gencache caches computed answers (rollup API responses) in Redis under a generation:
// each answer's key includes the current generation of its scope (one per policy domain, and
// one for answers over all domains), and whoever changes a scope's data bumps its generation,
// so every answer about it is missed at once without finding or deleting keys. Old answers age
// out with their TTL.
//
// The cache is an optimisation only: when Redis fails, lookups miss and stores are dropped, the
// failure is logged once (and its recovery once), and for a few seconds Redis is not tried at
// all so a dead server costs requests nothing.
package gencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTTL is how long an answer is kept when New is given no TTL.
const DefaultTTL = 5 * time.Minute

// retryAfter is how long Redis is left alone after a failure.
const retryAfter = 5 * time.Second

// opTimeout bounds each Redis call, so a hung server delays a request by little.
const opTimeout = 250 * time.Millisecond

const prefix = "vigil:rollup:"

// Cache is safe for concurrent use. A nil *Cache caches nothing.
type Cache struct {
	rdb redis.UniversalClient
	ttl time.Duration
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	down    bool
	retryAt time.Time

	// hits and misses count lookups for the metrics (read at scrape time by Counts).
	hits, misses atomic.Uint64
}

// Counts tells how many lookups were answered from the cache and how many were not (Redis
// unavailable included).
func (c *Cache) Counts() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

// New caches in rdb for ttl (DefaultTTL when 0). rdb nil gives a nil Cache.
func New(rdb redis.UniversalClient, ttl time.Duration, log *slog.Logger) *Cache {
	if rdb == nil {
		return nil
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{rdb: rdb, ttl: ttl, log: log, now: time.Now}
}

// TTL is how long answers are kept.
func (c *Cache) TTL() time.Duration { return c.ttl }

// genKey is the generation counter of a scope: a domain, or "" for all domains.
func genKey(domain string) string {
	if domain == "" {
		return prefix + "gen:all"
	}
	return prefix + "gen:domain:" + domain
}

// Ticket is a looked-up key, ready to store the answer under the generation seen at lookup.
// A later bump makes it unreachable: an answer computed from data older than the bump is
// never served after it.
type Ticket struct{ key string }

// Get looks key up in domain's scope ("" for all domains). On a miss the ticket stores the
// answer; a zero ticket (Redis unavailable) stores nothing.
func (c *Cache) Get(ctx context.Context, domain, key string) ([]byte, Ticket, bool) {
	if c == nil {
		return nil, Ticket{}, false
	}
	val, t, ok := c.get(ctx, domain, key)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return val, t, ok
}

func (c *Cache) get(ctx context.Context, domain, key string) ([]byte, Ticket, bool) {
	if !c.available() {
		return nil, Ticket{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	gen, err := c.rdb.Get(ctx, genKey(domain)).Result()
	if errors.Is(err, redis.Nil) {
		gen, err = "0", nil
	}
	if err != nil {
		c.failed(err)
		return nil, Ticket{}, false
	}
	sum := sha256.Sum256([]byte(key))
	t := Ticket{key: prefix + "ans:" + domain + ":" + gen + ":" + hex.EncodeToString(sum[:16])}
	val, err := c.rdb.Get(ctx, t.key).Bytes()
	if errors.Is(err, redis.Nil) {
		c.ok()
		return nil, t, false
	}
	if err != nil {
		c.failed(err)
		return nil, Ticket{}, false
	}
	c.ok()
	return val, t, true
}

// Put stores an answer under a ticket from Get.
func (c *Cache) Put(ctx context.Context, t Ticket, val []byte) {
	if c == nil || t.key == "" || !c.available() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, t.key, val, c.ttl).Err(); err != nil {
		c.failed(err)
		return
	}
	c.ok()
}

// Invalidate bumps the generation of each domain and of all-domain answers: call it after the
// data of those domains changed (committed).
func (c *Cache) Invalidate(ctx context.Context, domains []string) error {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*opTimeout)
	defer cancel()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, genKey(""))
		for _, d := range domains {
			if d = strings.TrimSpace(d); d != "" {
				p.Incr(ctx, genKey(d))
			}
		}
		return nil
	})
	if err != nil {
		c.failed(err)
		return err
	}
	c.ok()
	return nil
}

func (c *Cache) available() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down || !c.now().Before(c.retryAt)
}

func (c *Cache) failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.down {
		c.log.Warn("answer cache unavailable: answering from the database until Redis is back", "err", err)
	}
	c.down, c.retryAt = true, c.now().Add(retryAfter)
}

func (c *Cache) ok() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		c.log.Info("answer cache available again")
		c.down = false
	}
}
