package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/ratelimit"
)

// LockedError refuses a login while the account or the client address is locked out.
type LockedError struct {
	RetryAfter time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed logins; try again in %d seconds", int(e.RetryAfter.Round(time.Second)/time.Second)+1)
}

// ErrThrottleUnavailable: the failure counters cannot be read, so logins are refused rather
// than let through unthrottled.
var ErrThrottleUnavailable = errors.New("login is unavailable for now: the failed-login counters cannot be reached")

// ThrottleConfig sets the lockouts per account (e-mail tried, known or not) and per client address.
type ThrottleConfig struct {
	Account ratelimit.Lockout
	Address ratelimit.Lockout
}

// Throttle counts failed logins per account and per address (SECURITY-CASES D.29). Unknown
// e-mails are counted exactly like known ones, so a lockout tells nothing about an account.
type Throttle struct {
	l   *ratelimit.Limiter
	cfg ThrottleConfig
}

// NewThrottle returns a throttle counting in l.
func NewThrottle(l *ratelimit.Limiter, cfg ThrottleConfig) *Throttle {
	return &Throttle{l: l, cfg: cfg}
}

const (
	classAccount = "login-account"
	classAddress = "login-address"
)

// accountSubject keys an e-mail without putting it in Redis in clear, bounded in length
// whatever a client sends.
func accountSubject(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:16])
}

func unavailable(err error) error { return fmt.Errorf("%w (%v)", ErrThrottleUnavailable, err) }

// check refuses when either lock is on; the refused attempt is counted as a failure too, so a
// client that keeps trying while locked stays locked for longer.
func (t *Throttle) check(ctx context.Context, email, ip string) error {
	acct, err := t.l.Locked(ctx, classAccount, accountSubject(email))
	if err != nil {
		return unavailable(err)
	}
	var addr time.Duration
	if ip != "" {
		if addr, err = t.l.Locked(ctx, classAddress, ip); err != nil {
			return unavailable(err)
		}
	}
	if acct == 0 && addr == 0 {
		return nil
	}
	lock, err := t.fail(ctx, email, ip)
	if err != nil {
		return err
	}
	return &LockedError{RetryAfter: max(acct, addr, lock)}
}

// fail counts a failure for the account and the address and answers the longer lock it set.
func (t *Throttle) fail(ctx context.Context, email, ip string) (time.Duration, error) {
	_, lock, err := t.l.Fail(ctx, classAccount, accountSubject(email), t.cfg.Account)
	if err != nil {
		return 0, unavailable(err)
	}
	if ip != "" {
		_, addr, err := t.l.Fail(ctx, classAddress, ip, t.cfg.Address)
		if err != nil {
			return 0, unavailable(err)
		}
		lock = max(lock, addr)
	}
	return lock, nil
}

// succeed forgets the account's failures. The address's stay: a client with one valid
// account must not reset its own counter to guess at others.
func (t *Throttle) succeed(ctx context.Context, email string) error {
	if err := t.l.Reset(ctx, classAccount, accountSubject(email)); err != nil {
		return unavailable(err)
	}
	return nil
}

// Failures reads the counters of an account and an address (tests, admin tools).
func (t *Throttle) Failures(ctx context.Context, email, ip string) (account, address int64, err error) {
	if account, err = t.l.Failures(ctx, classAccount, accountSubject(email)); err != nil {
		return 0, 0, err
	}
	address, err = t.l.Failures(ctx, classAddress, ip)
	return account, address, err
}

// Unlock clears an account's lockout (after an admin's password reset).
func (t *Throttle) Unlock(ctx context.Context, email string) error {
	return t.l.Reset(ctx, classAccount, accountSubject(email))
}
