package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lockout says when repeated failures lock a subject out and for how long: from MaxFailures
// failures within Window on, each failure locks the subject for Base, doubled per failure
// past MaxFailures, never more than Max.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Base        time.Duration
	Max         time.Duration
}

// LockFor is the lock that the n-th failure in a window sets (0 below the threshold).
func (p Lockout) LockFor(n int64) time.Duration {
	if p.MaxFailures <= 0 || n < int64(p.MaxFailures) {
		return 0
	}
	d := p.Base
	for i := int64(p.MaxFailures); i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// fail counts a failure and, past the threshold, sets the lock with its backoff, in one step.
// Both keys share a hash tag so the script also runs on Redis Cluster. The counter lives at
// least as long as the lock plus a window, so the failure after a lock ends locks for longer.
var fail = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
local lock = 0
if threshold > 0 and n >= threshold then
  lock = tonumber(ARGV[3])
  local cap = tonumber(ARGV[4])
  local i = threshold
  while i < n and lock < cap do
    lock = lock * 2
    i = i + 1
  end
  if lock > cap then lock = cap end
  redis.call('SET', KEYS[2], '1', 'PX', lock)
  if ttl < lock + window then redis.call('PEXPIRE', KEYS[1], lock + window) end
end
return {n, lock}
`)

func (l *Limiter) lockKeys(class, subject string) []string {
	base := l.key("lock", class, "{"+subject+"}")
	return []string{base + ":n", base + ":lock"}
}

// Fail records one failure of subject and returns the failures counted in the window and the
// lock it set (0 when none).
func (l *Limiter) Fail(ctx context.Context, class, subject string, p Lockout) (int64, time.Duration, error) {
	v, err := fail.Run(ctx, l.rdb, l.lockKeys(class, subject), p.Window.Milliseconds(), p.MaxFailures,
		p.Base.Milliseconds(), p.Max.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return v[0], time.Duration(v[1]) * time.Millisecond, nil
}

// Locked returns how long subject stays locked (0 when it is not).
func (l *Limiter) Locked(ctx context.Context, class, subject string) (time.Duration, error) {
	d, err := l.rdb.PTTL(ctx, l.lockKeys(class, subject)[1]).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return max(d, 0), nil
}

// Failures returns the failures counted for subject in its current window.
func (l *Limiter) Failures(ctx context.Context, class, subject string) (int64, error) {
	n, err := l.rdb.Get(ctx, l.lockKeys(class, subject)[0]).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return n, nil
}

// Reset forgets subject's failures and lock (after a successful login, or an admin's reset).
func (l *Limiter) Reset(ctx context.Context, class, subject string) error {
	if err := l.rdb.Del(ctx, l.lockKeys(class, subject)...).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
