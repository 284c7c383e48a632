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
	// IPv6Prefix is how many leading bits of an IPv6 address are one client's address
	// (0: ratelimit.DefaultIPv6Prefix, a /64).
	IPv6Prefix int
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

// address is the subject of an address's counters: an IPv6 address counts with its /64.
func (t *Throttle) address(ip string) string { return ratelimit.AddressSubject(ip, t.cfg.IPv6Prefix) }

func unavailable(err error) error { return fmt.Errorf("%w (%v)", ErrThrottleUnavailable, err) }

// begin reserves one attempt for the account and one for the address before the password is
// verified, and refuses when either is locked or its attempts in the window reach past the
// threshold. Counting first is what makes the lockout hold against a burst: of any number of
// concurrent guesses on an account at most its threshold get a password verification. Every
// attempt is counted as a failure until finish says otherwise; a refused attempt stays counted,
// so a client that keeps trying while locked stays locked for longer.
func (t *Throttle) begin(ctx context.Context, email, ip string) error {
	acct, err := t.l.Reserve(ctx, classAccount, accountSubject(email), t.cfg.Account)
	if err != nil {
		return unavailable(err)
	}
	addr := ratelimit.Attempt{Allowed: true}
	if ip != "" {
		if addr, err = t.l.Reserve(ctx, classAddress, t.address(ip), t.cfg.Address); err != nil {
			return unavailable(err)
		}
	}
	if acct.Allowed && addr.Allowed {
		return nil
	}
	return &LockedError{RetryAfter: max(acct.Lock, addr.Lock, time.Second)}
}

// finish settles an attempt that begin allowed. A wrong password stays counted. A success
// forgets the account's failures and takes back the address's attempt, never its other
// failures: a client with one valid account must not reset its own counter to guess at others.
// An attempt cut short by something else (the database) is taken back from both.
func (t *Throttle) finish(ctx context.Context, email, ip string, err error) error {
	if errors.Is(err, ErrInvalidCredentials) {
		return nil
	}
	acct := accountSubject(email)
	var terr error
	if err == nil {
		terr = t.l.Reset(ctx, classAccount, acct)
	} else {
		terr = t.l.Release(ctx, classAccount, acct, t.cfg.Account)
	}
	if terr == nil && ip != "" {
		terr = t.l.Release(ctx, classAddress, t.address(ip), t.cfg.Address)
	}
	if terr != nil {
		return unavailable(terr)
	}
	return nil
}

// Failures reads the counters of an account and an address (tests, admin tools).
func (t *Throttle) Failures(ctx context.Context, email, ip string) (account, address int64, err error) {
	if account, err = t.l.Failures(ctx, classAccount, accountSubject(email)); err != nil {
		return 0, 0, err
	}
	address, err = t.l.Failures(ctx, classAddress, t.address(ip))
	return account, address, err
}

// Unlock clears an account's lockout (after an admin's password reset).
func (t *Throttle) Unlock(ctx context.Context, email string) error {
	return t.l.Reset(ctx, classAccount, accountSubject(email))
}
