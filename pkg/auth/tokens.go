package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"
)

// Token types, in the "typ" claim next to the audience.
const (
	typeAccess  = "access"
	typeRefresh = "refresh"
)

// ErrRefreshReplay: a refresh token that was already used came back. Its family is revoked:
// the thief or the owner, whoever used it first, is logged out (RFC 9700 §4.14.2).
var ErrRefreshReplay = fmt.Errorf("%w: refresh token already used; its session is revoked", ErrUnauthenticated)

type claims struct {
	jwt.RegisteredClaims
	Type    string `json:"typ"`
	Session string `json:"sid"`
	Version int64  `json:"ver,omitempty"`  // access: the user's token version when issued
	Gen     int64  `json:"gen,omitempty"`  // refresh: its place in the rotation
	Role    string `json:"role,omitempty"` // access: for clients only; the server reads the role from the database
}

// Validate adds what golang-jwt leaves optional: iat, sub, jti and our own claims.
func (c claims) Validate() error {
	switch {
	case c.IssuedAt == nil:
		return errors.New("iat is required")
	case c.Subject == "" || c.ID == "" || c.Session == "":
		return errors.New("sub, jti and sid are required")
	case c.Type == typeAccess && c.Version < 1, c.Type == typeRefresh && c.Gen < 1:
		return errors.New("token version missing")
	case c.Type != typeAccess && c.Type != typeRefresh:
		return errors.New("unknown token type")
	}
	return nil
}

// Tokens are what a login or refresh answers.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"` // seconds the access token lives
}

type sessionRow struct {
	ID            string `gorm:"primaryKey"`
	UserID        int64
	Generation    int64
	IP            string `gorm:"column:ip"`
	UserAgent     string
	CreatedAt     time.Time
	RefreshedAt   time.Time
	ExpiresAt     time.Time
	RevokedAt     *time.Time
	RevokedReason string
}

func (sessionRow) TableName() string { return "auth_sessions" }

func (s *Service) sign(c claims) (string, error) {
	t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return t, nil
}

// parse verifies a token of one audience: HS256 only (no "none", no algorithm confusion with
// an RSA key), exp, iat, iss and aud present and right, then our own claims.
func (s *Service) parse(token, audience, typ string) (claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.cfg.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(s.cfg.Issuer), jwt.WithAudience(audience),
		jwt.WithTimeFunc(s.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if c.Type != typ {
		return c, fmt.Errorf("%w: a %s token where a %s token belongs", ErrUnauthenticated, c.Type, typ)
	}
	return c, nil
}

// issue signs an access and a refresh token for the session at generation gen.
func (s *Service) issue(u userRow, sid string, gen int64) (Tokens, error) {
	now := s.now()
	base := func(aud string, ttl time.Duration) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: s.cfg.Issuer, Subject: strconv.FormatInt(u.ID, 10), Audience: jwt.ClaimStrings{aud},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: rand.Text()}
	}
	access, err := s.sign(claims{RegisteredClaims: base(AudienceAccess, s.cfg.AccessTTL), Type: typeAccess, Session: sid, Version: u.TokenVersion, Role: u.Role})
	if err != nil {
		return Tokens{}, err
	}
	refresh, err := s.sign(claims{RegisteredClaims: base(AudienceRefresh, s.cfg.RefreshTTL), Type: typeRefresh, Session: sid, Gen: gen})
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "bearer", ExpiresIn: int64(s.cfg.AccessTTL / time.Second)}, nil
}

// authenticate checks an e-mail and password. An unknown e-mail costs the same hash as a known
// one, and an inactive account fails like a wrong password.
func (s *Service) authenticate(ctx context.Context, email, password string) (userRow, error) {
	e, err := NormalizeEmail(email)
	var r userRow
	if err == nil {
		r, err = s.userByEmail(ctx, e)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return r, err
		}
	}
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes] // never matches: no stored password is this long
		r.PasswordHash = ""
	}
	ok, verr := s.hash.verify(ctx, password, r.PasswordHash)
	if verr != nil {
		return r, verr
	}
	if !ok || err != nil || !r.Active {
		return r, ErrInvalidCredentials
	}
	return r, nil
}

// Login checks the credentials (throttled per account and per address when a Throttle is set)
// and opens a session: a refresh-token family of its own.
func (s *Service) Login(ctx context.Context, email, password string, m Meta) (Tokens, User, error) {
	if s.throttle != nil {
		if err := s.throttle.begin(ctx, email, m.IP); err != nil {
			return Tokens{}, User{}, err
		}
	}
	r, err := s.authenticate(ctx, email, password)
	if s.throttle != nil {
		if terr := s.throttle.finish(ctx, email, m.IP, err); terr != nil && err == nil {
			return Tokens{}, User{}, terr
		}
	}
	if err != nil {
		return Tokens{}, User{}, err
	}
	now := s.now()
	sess := sessionRow{ID: rand.Text(), UserID: r.ID, Generation: 1, IP: m.IP, UserAgent: truncate(m.UserAgent, 400),
		CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&sess).Error; err != nil {
			return err
		}
		return tx.Model(&userRow{}).Where("id = ?", r.ID).Update("last_login_at", now).Error
	})
	if err != nil {
		return Tokens{}, User{}, fmt.Errorf("auth: open session: %w", err)
	}
	r.LastLoginAt = &now
	t, err := s.issue(r, sess.ID, 1)
	return t, r.user(), err
}

// Refresh rotates a refresh token: it answers new tokens once per refresh token. Of concurrent
// refreshes with the same token exactly one wins the conditional update; any later use of a
// rotated token is a replay and revokes the family.
func (s *Service) Refresh(ctx context.Context, token string) (Tokens, User, error) {
	c, err := s.parse(token, AudienceRefresh, typeRefresh)
	if err != nil {
		return Tokens{}, User{}, err
	}
	now := s.now()
	res := s.db.WithContext(ctx).Model(&sessionRow{}).
		Where("id = ? AND generation = ? AND revoked_at IS NULL AND expires_at > ?", c.Session, c.Gen, now).
		Updates(map[string]any{"generation": c.Gen + 1, "refreshed_at": now, "expires_at": now.Add(s.cfg.RefreshTTL)})
	if res.Error != nil {
		return Tokens{}, User{}, fmt.Errorf("auth: rotate refresh token: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		var sess sessionRow
		if err := s.db.WithContext(ctx).First(&sess, "id = ?", c.Session).Error; err != nil {
			return Tokens{}, User{}, fmt.Errorf("%w: unknown session", ErrUnauthenticated)
		}
		if sess.RevokedAt == nil && sess.Generation > c.Gen {
			if err := s.revokeSession(ctx, s.db, c.Session, "refresh token replayed"); err != nil {
				return Tokens{}, User{}, err
			}
			u, _ := s.userRow(ctx, s.db, sess.UserID)
			return Tokens{}, u.user(), ErrRefreshReplay
		}
		return Tokens{}, User{}, fmt.Errorf("%w: session revoked or expired", ErrUnauthenticated)
	}
	uid, _ := strconv.ParseInt(c.Subject, 10, 64)
	r, err := s.userRow(ctx, s.db, uid)
	if err != nil || !r.Active {
		return Tokens{}, User{}, fmt.Errorf("%w: account unavailable", ErrUnauthenticated)
	}
	t, err := s.issue(r, c.Session, c.Gen+1)
	return t, r.user(), err
}

// Logout revokes the session of a refresh token, which kills its access tokens too. It answers
// the session's user, for the audit log.
func (s *Service) Logout(ctx context.Context, refreshToken string) (User, error) {
	c, err := s.parse(refreshToken, AudienceRefresh, typeRefresh)
	if err != nil {
		return User{}, err
	}
	var sess sessionRow
	if err := s.db.WithContext(ctx).First(&sess, "id = ?", c.Session).Error; err != nil {
		return User{}, fmt.Errorf("%w: unknown session", ErrUnauthenticated)
	}
	if err := s.revokeSession(ctx, s.db, c.Session, "logout"); err != nil {
		return User{}, err
	}
	u, err := s.userRow(ctx, s.db, sess.UserID)
	return u.user(), err
}

// RevokeSession ends one session by id (the logout of a bearer token's own session).
func (s *Service) RevokeSession(ctx context.Context, id string) error {
	return s.revokeSession(ctx, s.db, id, "logout")
}

func (s *Service) revokeSession(ctx context.Context, db *gorm.DB, id, reason string) error {
	err := db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", id).
		Updates(map[string]any{"revoked_at": s.now(), "revoked_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("auth: revoke session: %w", err)
	}
	return nil
}

// revokeAll ends every session and API key of a user (inside the caller's transaction).
func (s *Service) revokeAll(tx *gorm.DB, userID int64, reason string) error {
	now := s.now()
	if err := tx.Model(&sessionRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Updates(map[string]any{"revoked_at": now, "revoked_reason": reason}).Error; err != nil {
		return fmt.Errorf("auth: revoke sessions: %w", err)
	}
	if err := tx.Model(&keyRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).Update("revoked_at", now).Error; err != nil {
		return fmt.Errorf("auth: revoke keys: %w", err)
	}
	return nil
}

// VerifyAccess checks an access token and that its session, user and token version still
// stand, so a logout, password change, deactivation or role change takes effect at once.
func (s *Service) VerifyAccess(ctx context.Context, token string) (Principal, error) {
	c, err := s.parse(token, AudienceAccess, typeAccess)
	if err != nil {
		return Principal{}, err
	}
	uid, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: bad subject", ErrUnauthenticated)
	}
	var row struct {
		U              userRow `gorm:"embedded"`
		SessionRevoked *time.Time
	}
	err = s.db.WithContext(ctx).Table("auth_sessions AS s").
		Select("u.*, s.revoked_at AS session_revoked").
		Joins("JOIN users AS u ON u.id = s.user_id").
		Where("s.id = ? AND u.id = ?", c.Session, uid).Take(&row).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Principal{}, fmt.Errorf("%w: unknown session", ErrUnauthenticated)
		}
		return Principal{}, fmt.Errorf("auth: check token: %w", err)
	}
	switch {
	case row.SessionRevoked != nil:
		return Principal{}, fmt.Errorf("%w: session revoked", ErrUnauthenticated)
	case !row.U.Active || row.U.TokenVersion != c.Version:
		return Principal{}, fmt.Errorf("%w: token revoked", ErrUnauthenticated)
	}
	u := row.U.user()
	return Principal{User: u, Role: u.Role, SessionID: c.Session}, nil
}

// truncate cuts s to at most n bytes of valid UTF-8 (PostgreSQL refuses anything else).
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
