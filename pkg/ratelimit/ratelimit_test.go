package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDB is this package's database on the real server; tests share it under their own prefix.
const redisDB = 5

var real struct {
	once sync.Once
	opt  asynq.RedisClientOpt
}

// limiter gives a test its own limiter: a fresh miniredis, or the real server's database under
// a prefix of its own (named after the test, plus a random part: -count=N reruns a name in one
// process, after the database was flushed).
func limiter(t *testing.T, b testenv.Backend) (l *ratelimit.Limiter, c *redis.Client, prefix string) {
	t.Helper()
	var opt asynq.RedisClientOpt
	if b.Real() {
		real.once.Do(func() { real.opt = b.Redis(t, redisDB) })
		opt = real.opt
	} else {
		opt = b.Redis(t, redisDB)
	}
	c = redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	t.Cleanup(func() { c.Close() })
	prefix = fmt.Sprintf("test:%s:%x:", t.Name(), rand.Uint64())
	return ratelimit.New(c, prefix), c, prefix
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	good := map[string]ratelimit.Rate{
		"100/1m": {100, time.Minute}, "20/h": {20, time.Hour}, "5/30s": {5, 30 * time.Second},
		"1000/d": {1000, 24 * time.Hour}, "10 / 2h": {10, 2 * time.Hour}, "off": {}, "OFF": {},
	}
	for in, want := range good {
		got, err := ratelimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "100", "0/m", "-1/m", "x/m", "10/", "10/fortnight", "10/10ms", "10/xd"} {
		if r, err := ratelimit.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, r)
		}
	}
}

func TestAllowWindow(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		l, c, prefix := limiter(t, b)
		ctx := context.Background()
		rate := ratelimit.Rate{N: 3, Per: time.Minute}
		for i := 1; i <= 5; i++ {
			res, err := l.Allow(ctx, "api", "user:1", rate)
			if err != nil {
				t.Fatal(err)
			}
			if want := i <= 3; res.Allowed != want || res.Count != int64(i) {
				t.Fatalf("event %d: %+v, want allowed=%v", i, res, want)
			}
			if !res.Allowed && (res.RetryAfter <= 0 || res.RetryAfter > time.Minute) {
				t.Fatalf("event %d: retry after %v, want within the window", i, res.RetryAfter)
			}
		}
		// Another subject and another class have their own counters.
		if res, _ := l.Allow(ctx, "api", "user:2", rate); !res.Allowed {
			t.Fatal("user 2 refused by user 1's count")
		}
		if res, _ := l.Allow(ctx, "upload", "user:1", rate); !res.Allowed {
			t.Fatal("class upload refused by class api's count")
		}
		// Every key has an expiry: no counter lives for ever.
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) != 3 {
			t.Fatalf("keys %v", keys)
		}
		for _, k := range keys {
			if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
				t.Errorf("%s: ttl %v", k, ttl)
			}
		}
		if res, _ := l.Allow(ctx, "api", "user:1", ratelimit.Rate{}); !res.Allowed {
			t.Fatal("an off rate refused")
		}
	})
}

// SECURITY-CASES D.29: 50 concurrent failures count exactly 50 (no lost update).
func TestConcurrentCountsAreExact(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		l, _, _ := limiter(t, b)
		ctx := context.Background()
		p := ratelimit.Lockout{MaxFailures: 5, Window: time.Minute, Base: time.Second, Max: time.Minute}
		var wg sync.WaitGroup
		allowed := make(chan bool, 50)
		for range 50 {
			wg.Go(func() {
				if _, err := l.Reserve(ctx, "acct", "alice", p); err != nil {
					t.Error(err)
				}
				res, err := l.Allow(ctx, "api", "alice", ratelimit.Rate{N: 10, Per: time.Minute})
				if err != nil {
					t.Error(err)
				}
				allowed <- res.Allowed
			})
		}
		wg.Wait()
		close(allowed)
		if n, err := l.Failures(ctx, "acct", "alice"); err != nil || n != 50 {
			t.Fatalf("failures %d %v, want exactly 50", n, err)
		}
		ok := 0
		for a := range allowed {
			if a {
				ok++
			}
		}
		if ok != 10 {
			t.Fatalf("%d of 50 concurrent requests allowed at 10/min, want exactly 10", ok)
		}
	})
}

func TestLockoutBacksOff(t *testing.T) {
	t.Parallel()
	p := ratelimit.Lockout{MaxFailures: 3, Window: 15 * time.Minute, Base: time.Minute, Max: 10 * time.Minute}
	for n, want := range map[int64]time.Duration{1: 0, 2: 0, 3: time.Minute, 4: 2 * time.Minute, 5: 4 * time.Minute, 6: 8 * time.Minute, 7: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := p.LockFor(n); got != want {
			t.Errorf("LockFor(%d) = %v, want %v", n, got, want)
		}
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		l, c, prefix := limiter(t, b)
		ctx := context.Background()
		for i := int64(1); i <= 7; i++ {
			a, err := l.Reserve(ctx, "acct", "bob", p)
			n, lock := a.Count, a.Lock
			if err != nil || n != i || lock != p.LockFor(i) {
				t.Fatalf("failure %d: n=%d lock=%v err=%v, want lock %v", i, n, lock, err, p.LockFor(i))
			}
			locked, err := l.Locked(ctx, "acct", "bob")
			if err != nil || (locked > 0) != (i >= 3) || locked > lock {
				t.Fatalf("failure %d: locked for %v (%v)", i, locked, err)
			}
		}
		// The counter outlives the longest lock, so the next failure after it backs off further.
		keys, _ := c.Keys(ctx, prefix+"*:n").Result()
		if len(keys) != 1 || c.PTTL(ctx, keys[0]).Val() < 10*time.Minute {
			t.Fatalf("counter keys %v", keys)
		}
		if d, _ := l.Locked(ctx, "acct", "carol"); d != 0 {
			t.Fatalf("carol locked for %v by bob's failures", d)
		}
		if err := l.Reset(ctx, "acct", "bob"); err != nil {
			t.Fatal(err)
		}
		if d, _ := l.Locked(ctx, "acct", "bob"); d != 0 {
			t.Fatalf("still locked for %v after a reset", d)
		}
		if n, _ := l.Failures(ctx, "acct", "bob"); n != 0 {
			t.Fatalf("%d failures after a reset", n)
		}
	})
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	l := ratelimit.New(c, "x:")
	if _, err := l.Allow(context.Background(), "api", "u", ratelimit.Rate{N: 1, Per: time.Minute}); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Redis down: %v, want ErrUnavailable", err)
	}
}
