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

// reserve counts an attempt before it is made, and says in the same step whether it may be
// made: the attempt is refused when the subject is already locked, or when the failures and
// attempts still in flight reach past the threshold. Counting first is what stops a burst:
// were the lock checked before the count, every request of a burst would be checked before
// any of its failures was recorded (issue 18). From the threshold on the attempt also sets the
// lock with its backoff, so the threshold-th attempt is the last one allowed until it either
// fails (the lock stays) or succeeds (the caller resets or releases). Both keys share a hash
// tag so the script also runs on Redis Cluster. The counter lives at least as long as the lock
// plus a window, so the failure after a lock ends locks for longer.
var reserve = redis.NewScript(`
local held = redis.call('PTTL', KEYS[2])
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
local allowed = 1
if held > 0 or (threshold > 0 and n > threshold) then allowed = 0 end
if held < 0 then held = 0 end
return {n, lock, allowed, held}
`)

// release takes back an attempt that turned out not to be a failure. Below the threshold
// again, the lock that attempt set goes too (every attempt refused while locked is counted,
// so a lock earned by failures is never below the threshold).
var release = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then n = redis.call('DECR', KEYS[1]) end
local threshold = tonumber(ARGV[1])
if threshold > 0 and n < threshold then redis.call('DEL', KEYS[2]) end
return n
`)

func (l *Limiter) lockKeys(class, subject string) []string {
	base := l.key("lock", class, "{"+subject+"}")
	return []string{base + ":n", base + ":lock"}
}

// Attempt is the outcome of one reserved attempt.
type Attempt struct {
	Allowed bool          // the attempt may be made
	Count   int64         // attempts counted in the window, this one included
	Lock    time.Duration // how long the subject is locked now (0 when it is not)
}

// Reserve counts one attempt of subject, to be made only when Allowed. A refused attempt
// counts too, so a client that keeps trying while locked stays locked for longer. An attempt
// that fails needs nothing more; one that succeeds calls Reset or Release.
func (l *Limiter) Reserve(ctx context.Context, class, subject string, p Lockout) (Attempt, error) {
	v, err := reserve.Run(ctx, l.rdb, l.lockKeys(class, subject), p.Window.Milliseconds(), p.MaxFailures,
		p.Base.Milliseconds(), p.Max.Milliseconds()).Int64Slice()
	if err != nil {
		return Attempt{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ms := time.Millisecond
	return Attempt{Allowed: v[2] == 1, Count: v[0], Lock: max(time.Duration(v[1])*ms, time.Duration(v[3])*ms)}, nil
}

// Release takes back one reserved attempt that was not a failure (a success that must not
// clear the subject's other failures, or an attempt cut short by an unrelated error).
func (l *Limiter) Release(ctx context.Context, class, subject string, p Lockout) error {
	if err := release.Run(ctx, l.rdb, l.lockKeys(class, subject), p.MaxFailures).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
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
