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
		"100/1m": {N: 100, Per: time.Minute}, "20/h": {N: 20, Per: time.Hour}, "5/30s": {N: 5, Per: 30 * time.Second},
		"1000/d": {N: 1000, Per: 24 * time.Hour}, "10 / 2h": {N: 10, Per: 2 * time.Hour}, "off": {}, "OFF": {},
		"600/1m burst 300": {N: 600, Per: time.Minute, Burst: 300}, "600/m burst=50": {N: 600, Per: time.Minute, Burst: 50},
		" 60/1m  BURST 1000 ": {N: 60, Per: time.Minute, Burst: 1000},
	}
	for in, want := range good {
		got, err := ratelimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, err := ratelimit.ParseRate(got.String()); err != nil || again != got && !(got.Burst == got.N && again.Burst == 0) {
			t.Errorf("ParseRate(%q.String() = %q) = %v, %v", in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "100", "0/m", "-1/m", "x/m", "10/", "10/fortnight", "10/10ms", "10/xd",
		"10/m burst", "10/m burst 0", "10/m burst x", "burst 5"} {
		if r, err := ratelimit.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, r)
		}
	}
}

// clock is a hand-moved clock for the buckets' refill.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAllowBucket(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		_, c, prefix := limiter(t, b)
		clk := &clock{t: time.Unix(1_800_000_000, 0)}
		l := ratelimit.NewWithClock(c, prefix, clk.now)
		ctx := context.Background()
		allow := func(subject string, rate ratelimit.Rate) ratelimit.Result {
			t.Helper()
			res, err := l.Allow(ctx, "api", subject, rate)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		// 60/1m burst 5: five at once, then one a second.
		rate := ratelimit.Rate{N: 60, Per: time.Minute, Burst: 5}
		for i := 1; i <= 5; i++ {
			if res := allow("user:1", rate); !res.Allowed || res.Remaining != int64(5-i) || res.Limit != 5 {
				t.Fatalf("event %d: %+v, want allowed with %d left of 5", i, res, 5-i)
			}
		}
		res := allow("user:1", rate)
		if res.Allowed || res.RetryAfter != time.Second {
			t.Fatalf("event 6: %+v, want refused for 1s", res)
		}
		// Refused requests take nothing: hammering does not push the next token back.
		for range 20 {
			allow("user:1", rate)
		}
		clk.add(999 * time.Millisecond)
		if res := allow("user:1", rate); res.Allowed || res.RetryAfter != time.Millisecond {
			t.Fatalf("after 999ms: %+v, want refused for 1ms more", res)
		}
		clk.add(time.Millisecond)
		if res := allow("user:1", rate); !res.Allowed || res.Remaining != 0 {
			t.Fatalf("after 1s: %+v, want one token", res)
		}
		// A quiet spell refills the bucket, never beyond the burst.
		clk.add(time.Hour)
		for i := 1; i <= 5; i++ {
			if res := allow("user:1", rate); !res.Allowed {
				t.Fatalf("after an hour, event %d refused: %+v", i, res)
			}
		}
		if res := allow("user:1", rate); res.Allowed {
			t.Fatalf("after an hour, event 6 allowed: the bucket outgrew its burst")
		}
		// Without a burst the bucket holds N.
		plain := ratelimit.Rate{N: 3, Per: time.Minute}
		for i := 1; i <= 4; i++ {
			res := allow("user:2", plain)
			if want := i <= 3; res.Allowed != want {
				t.Fatalf("3/1m event %d: %+v, want allowed=%v", i, res, want)
			}
			if i == 4 && res.RetryAfter != 20*time.Second {
				t.Fatalf("3/1m refused for %v, want 20s (one token's worth)", res.RetryAfter)
			}
		}
		// Another subject and another class have their own buckets.
		if res := allow("user:3", plain); !res.Allowed {
			t.Fatal("user 3 refused by user 2's bucket")
		}
		if res, _ := l.Allow(ctx, "upload", "user:2", plain); !res.Allowed {
			t.Fatal("class upload refused by class api's bucket")
		}
		// Every key expires once its bucket would be full again: no bucket lives for ever.
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) != 4 {
			t.Fatalf("keys %v", keys)
		}
		for _, k := range keys {
			if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute+time.Second {
				t.Errorf("%s: ttl %v", k, ttl)
			}
		}
		if res := allow("user:2", ratelimit.Rate{}); !res.Allowed {
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
