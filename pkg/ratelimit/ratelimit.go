// Package ratelimit counts events in Redis with atomic fixed-window counters: request rate
// limits per user or key, and failed-login counters with a lockout that backs off. Every
// counter is one Lua script, so concurrent callers in any number of processes never lose a
// count (a read-modify-write from Go would: SECURITY-CASES D.29).
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

// Rate is a number of events allowed per period. The zero Rate allows everything.
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.N <= 0 || r.Per <= 0 }

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// ParseRate reads "100/1m", "20/h", "5/30s", "1000/d" or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" {
		return Rate{}, nil
	}
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
	return Rate{N: count, Per: d}, nil
}

// ErrUnavailable wraps a Redis failure so callers can decide to fail open or closed.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Limiter keeps its counters under one key prefix in one Redis (database or cluster).
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a limiter whose keys all start with prefix (such as "vigil:").
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix}
}

// Key joins the prefix and the parts; callers pass a category first ("rl", "login:acct").
func (l *Limiter) key(parts ...string) string {
	return l.prefix + strings.Join(parts, ":")
}

// incr adds one to KEYS[1] and starts its window on the first count. PEXPIRE is set again if
// the key somehow has no expiry, so a counter can never live for ever.
var incr = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// Result is the outcome of one counted event.
type Result struct {
	Allowed    bool
	Count      int64         // events in the current window, this one included
	Remaining  int64         // events still allowed in the window
	RetryAfter time.Duration // when not allowed: until the window ends
}

// Allow counts one event for subject against rate. Every call counts, refused ones too, so a
// client hammering past its limit does not get a fresh allowance any sooner.
func (l *Limiter) Allow(ctx context.Context, class, subject string, rate Rate) (Result, error) {
	if rate.Off() {
		return Result{Allowed: true, Remaining: -1}, nil
	}
	n, ttl, err := l.count(ctx, l.key("rl", class, subject), rate.Per)
	if err != nil {
		return Result{}, err
	}
	res := Result{Count: n, Allowed: n <= int64(rate.N), Remaining: max(0, int64(rate.N)-n)}
	if !res.Allowed {
		res.RetryAfter = ttl
	}
	return res, nil
}

func (l *Limiter) count(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	v, err := incr.Run(ctx, l.rdb, []string{key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return v[0], time.Duration(v[1]) * time.Millisecond, nil
}
