// Package ratelimit keeps request rate limits and failed-login counters in Redis. A rate limit
// is a token bucket per user or key: a burst may be spent at once, then requests flow at the
// sustained rate, so a dashboard page that fires a dozen requests, or a script that reads a
// hundred reports, never waits while a steady stream above the rate does. Failed logins are
// fixed-window counters with a lockout that backs off. Every check is one Lua script, so
// concurrent callers in any number of processes never lose a count (a read-modify-write from
// Go would: SECURITY-CASES D.29).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate is a sustained rate of N events per period with a burst: a bucket of Burst tokens
// (N when Burst is 0) refilled at N per Per. The zero Rate allows everything.
type Rate struct {
	N     int
	Per   time.Duration
	Burst int
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.N <= 0 || r.Per <= 0 }

// Capacity is the bucket's size: how many events may come at once after a quiet spell.
func (r Rate) Capacity() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.N
}

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	s := fmt.Sprintf("%d/%s", r.N, r.Per)
	if r.Burst > 0 && r.Burst != r.N {
		s += fmt.Sprintf(" burst %d", r.Burst)
	}
	return s
}

// ParseRate reads "100/1m", "20/h", "5/30s", "1000/d", any of them followed by "burst B"
// (such as "600/1m burst 300"), or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" {
		return Rate{}, nil
	}
	s, burstText, hasBurst := strings.Cut(s, "burst")
	s = strings.TrimSpace(s)
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/PERIOD such as 100/1m or 20/h", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: want a positive count before the slash", s)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(per, "d"); ok {
		k, err := strconv.Atoi(days)
		if err != nil {
			return Rate{}, fmt.Errorf("rate %q: bad period", s)
		}
		d = time.Duration(k) * 24 * time.Hour
	} else if d, err = time.ParseDuration(per); err != nil {
		return Rate{}, fmt.Errorf("rate %q: bad period: %v", s, err)
	}
	if d < time.Second {
		return Rate{}, fmt.Errorf("rate %q: the period must be at least 1s", s)
	}
	r := Rate{N: count, Per: d}
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(burstText), "=")))
		if err != nil || b < 1 {
			return Rate{}, fmt.Errorf("rate %q: want a positive whole number after burst", s+" burst"+burstText)
		}
		r.Burst = b
	}
	return r, nil
}

// ErrUnavailable wraps a Redis failure so callers can decide to fail open or closed.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Limiter keeps its counters under one key prefix in one Redis (database or cluster).
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New returns a limiter whose keys all start with prefix (such as "vigil:").
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return NewWithClock(rdb, prefix, time.Now)
}

// NewWithClock is New with the clock that refills the buckets (tests move it by hand). The
// clock is the caller's, not Redis's TIME, so every Redis (and miniredis) runs the script;
// api replicas whose clocks differ a little only refill a little early or late.
func NewWithClock(rdb redis.UniversalClient, prefix string, now func() time.Time) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix, now: now}
}

// Key joins the prefix and the parts; callers pass a category first ("rl", "login:acct").
func (l *Limiter) key(parts ...string) string {
	return l.prefix + strings.Join(parts, ":")
}

// take refills the bucket KEYS[1] for the time since its last use and takes one token when
// there is one. ARGV: capacity, milliseconds per token, now (Unix ms). The bucket is a hash
// (tokens as a fraction, time of the last refill) that expires once it would be full again,
// so an idle subject costs nothing. A refused request takes nothing: a client that waits for
// Retry-After gets its token then, however often it asked before.
var take = redis.NewScript(`
local cap = tonumber(ARGV[1])
local ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) / ms)
  ts = now
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  -- less a millionth of a millisecond: float rounding must not add a whole one
  wait = math.ceil((1 - tokens) * ms - 0.000001)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) * ms) + 1000)
return {allowed, math.floor(tokens), wait}
`)

// Result is the outcome of one checked event.
type Result struct {
	Allowed    bool
	Limit      int64         // the bucket's capacity
	Remaining  int64         // whole tokens left after this event
	RetryAfter time.Duration // when not allowed: until the next token
}

// Allow takes a token for subject from its bucket of rate in class.
func (l *Limiter) Allow(ctx context.Context, class, subject string, rate Rate) (Result, error) {
	if rate.Off() {
		return Result{Allowed: true, Remaining: -1}, nil
	}
	perToken := float64(rate.Per.Milliseconds()) / float64(rate.N)
	v, err := take.Run(ctx, l.rdb, []string{l.key("rl", class, subject)},
		rate.Capacity(), strconv.FormatFloat(perToken, 'f', 6, 64), l.now().UnixMilli()).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	res := Result{Allowed: v[0] == 1, Limit: int64(rate.Capacity()), Remaining: max(0, v[1])}
	if !res.Allowed {
		res.RetryAfter = time.Duration(v[2]) * time.Millisecond
	}
	return res, nil
}
