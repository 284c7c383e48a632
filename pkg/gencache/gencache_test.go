package gencache

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/testenv"
)

func TestGenerations(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		opt := b.Redis(t, 12)
		rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
		t.Cleanup(func() { rdb.Close() })
		ctx := context.Background()
		c := New(rdb, time.Minute, testenv.Logger())

		put := func(domain, key, val string) {
			t.Helper()
			if _, _, ok := c.Get(ctx, domain, key); ok {
				t.Fatalf("%s/%s: hit before put", domain, key)
			}
			_, tk, _ := c.Get(ctx, domain, key)
			c.Put(ctx, tk, []byte(val))
		}
		hit := func(domain, key, want string) bool {
			t.Helper()
			got, _, ok := c.Get(ctx, domain, key)
			if ok && string(got) != want {
				t.Fatalf("%s/%s = %q, want %q", domain, key, got, want)
			}
			return ok
		}
		put("a.example", "q", "A")
		put("b.example", "q", "B")
		put("", "q", "ALL")
		if !hit("a.example", "q", "A") || !hit("b.example", "q", "B") || !hit("", "q", "ALL") || hit("a.example", "other", "") {
			t.Fatal("answers not cached under their scope and key")
		}
		if err := c.Invalidate(ctx, []string{"a.example"}); err != nil {
			t.Fatal(err)
		}
		if hit("a.example", "q", "") || hit("", "q", "") {
			t.Error("a.example's and all-domain answers survived a.example's invalidation")
		}
		if !hit("b.example", "q", "B") {
			t.Error("b.example's answer lost to a.example's invalidation")
		}
		// An answer computed before an invalidation (ticket taken before) is never served after it.
		_, tk, _ := c.Get(ctx, "b.example", "late")
		if err := c.Invalidate(ctx, []string{"b.example"}); err != nil {
			t.Fatal(err)
		}
		c.Put(ctx, tk, []byte("stale"))
		if hit("b.example", "late", "stale") {
			t.Error("a stale answer stored after the invalidation was served")
		}
		if ttl := rdb.TTL(ctx, tk.key).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("answer TTL %v, want up to a minute", ttl)
		}
		var nilCache *Cache
		if _, _, ok := nilCache.Get(ctx, "", "q"); ok || nilCache.Invalidate(ctx, []string{"x"}) != nil {
			t.Error("a nil cache must miss and invalidate nothing")
		}
	})
}

type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// A Redis outage misses every lookup, is logged once, is not retried for a few seconds, and
// its end is logged once.
func TestOutage(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	logs := &logCounter{}
	c := New(rdb, time.Minute, slog.New(logs))
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	_, tk, _ := c.Get(ctx, "", "q")
	c.Put(ctx, tk, []byte("v"))

	addr := m.Addr()
	m.Close()
	for i := 0; i < 20; i++ {
		if _, _, ok := c.Get(ctx, "", "q"); ok {
			t.Fatal("hit with Redis down")
		}
	}
	if n := logs.count("unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want 1", n)
	}
	if err := c.Invalidate(ctx, []string{"x"}); err == nil {
		t.Error("Invalidate with Redis down reported no error")
	}

	m2 := miniredis.NewMiniRedis()
	if err := m2.StartAddr(addr); err != nil {
		t.Skipf("cannot restart Redis on %s: %v", addr, err)
	}
	t.Cleanup(m2.Close)
	if _, _, ok := c.Get(ctx, "", "q"); ok || logs.count("available again") != 0 {
		t.Error("Redis was tried again before the retry delay")
	}
	now = now.Add(retryAfter)
	_, tk, ok := c.Get(ctx, "", "q")
	if ok || tk.key == "" {
		t.Fatalf("after the delay: hit %v ticket %q, want a miss with a ticket", ok, tk.key)
	}
	if n := logs.count("available again"); n != 1 {
		t.Errorf("recovery logged %d times, want 1", n)
	}
}
