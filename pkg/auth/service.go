// Package auth holds Vigil's users, passwords, tokens and API keys: who may call the API and
// with which role. Access tokens are short-lived JWTs (HS256, algorithm pinned, exp/iat/iss/aud
// required); refresh tokens rotate on every use and a replayed one revokes its whole family
// (RFC 9700 §4.14.2); passwords are argon2id hashes; API keys are kept as SHA-256 hashes. The
// tables live in the store's database (migration 00002_auth); failed-login counters live in
// Redis through pkg/ratelimit.
package auth

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Config is what the service needs from the process configuration.
type Config struct {
	Secret     []byte        // HMAC key of the JWTs: at least 32 bytes
	Issuer     string        // "iss" of every token; default "vigil"
	AccessTTL  time.Duration // default 15 minutes
	RefreshTTL time.Duration // default 7 days
	Params     Params        // argon2id cost; zero means DefaultParams
}

// MinSecretBytes is the shortest JWT secret accepted (RFC 7518 §3.2: a key at least as long
// as the HS256 output).
const MinSecretBytes = 32

// Audiences keep the two token kinds apart: a refresh token is never an access token.
const (
	AudienceAccess  = "vigil-api"
	AudienceRefresh = "vigil-refresh"
)

// Service is safe for concurrent use.
type Service struct {
	db       *gorm.DB
	cfg      Config
	hash     *hasher
	throttle *Throttle
	now      func() time.Time
}

// New builds the service on db (the store's gorm handle). throttle may be nil (no lockout:
// the one-shot admin commands).
func New(db *gorm.DB, cfg Config, throttle *Throttle) (*Service, error) {
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: the JWT secret has %d bytes; at least %d are needed", len(cfg.Secret), MinSecretBytes)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "vigil"
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 7 * 24 * time.Hour
	}
	h, err := newHasher(cfg.Params)
	if err != nil {
		return nil, err
	}
	return &Service{db: db, cfg: cfg, hash: h, throttle: throttle, now: func() time.Time { return time.Now().UTC() }}, nil
}

// AccessTTL is how long an access token lives (the login answer's expires_in).
func (s *Service) AccessTTL() time.Duration { return s.cfg.AccessTTL }

// Principal is who a request acts as: a user, through a token or one of their API keys.
type Principal struct {
	User      User
	Role      Role   // effective: the user's role, or the key's when the key's is lower
	KeyID     int64  // the API key used; 0 for a token
	SessionID string // the login (refresh family) of the access token; "" for a key
}

// Meta is where a request comes from, kept with sessions and failed-login counters.
type Meta struct {
	IP        string
	UserAgent string
}

func (s *Service) postgres() bool { return s.db.Dialector.Name() == "postgres" }

// notFound maps gorm's not-found onto ours.
func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}
