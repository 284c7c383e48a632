package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Issue 18: the attempt is counted before it is made, so of a burst of concurrent attempts on
// one subject exactly the threshold is allowed, however many arrive at once.
func TestReserveStopsABurst(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		l, _, _ := limiter(t, b)
		ctx := context.Background()
		p := ratelimit.Lockout{MaxFailures: 5, Window: time.Minute, Base: time.Minute, Max: 10 * time.Minute}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				a, err := l.Reserve(ctx, "acct", "eve", p)
				if err != nil {
					t.Error(err)
				}
				if a.Allowed {
					allowed.Add(1)
				} else if a.Lock <= 0 {
					t.Errorf("refused attempt %d with no lock", a.Count)
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != int64(p.MaxFailures) {
			t.Fatalf("%d of 40 concurrent attempts allowed, want exactly %d", n, p.MaxFailures)
		}
		if n, _ := l.Failures(ctx, "acct", "eve"); n != 40 {
			t.Fatalf("counted %d, want 40", n)
		}
	})
}

// Releasing an attempt that succeeded takes it back, and with it the lock it set at the
// threshold; failures before it stay counted.
func TestReleaseTakesBackOneAttempt(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		l, _, _ := limiter(t, b)
		ctx := context.Background()
		p := ratelimit.Lockout{MaxFailures: 3, Window: time.Minute, Base: time.Minute, Max: 10 * time.Minute}
		for i := range 3 {
			a, err := l.Reserve(ctx, "addr", "ip", p)
			if err != nil || !a.Allowed {
				t.Fatalf("attempt %d: %+v %v", i+1, a, err)
			}
		}
		if d, _ := l.Locked(ctx, "addr", "ip"); d <= 0 {
			t.Fatal("the threshold-th attempt set no lock")
		}
		if err := l.Release(ctx, "addr", "ip", p); err != nil {
			t.Fatal(err)
		}
		if d, _ := l.Locked(ctx, "addr", "ip"); d != 0 {
			t.Fatalf("still locked for %v after the last attempt was released", d)
		}
		if n, _ := l.Failures(ctx, "addr", "ip"); n != 2 {
			t.Fatalf("%d failures after a release, want the 2 before it", n)
		}
		// Released below zero it stays at zero.
		for range 4 {
			l.Release(ctx, "addr", "other", p)
		}
		if n, _ := l.Failures(ctx, "addr", "other"); n != 0 {
			t.Fatalf("%d failures", n)
		}
	})
}
