package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// API keys are "vgl_" and 43 characters of base64url: 256 random bits (ASVS 5 asks for 128).
const (
	keyPrefix     = "vgl_"
	keySecretLen  = 32
	keyShownChars = 12 // "vgl_" and 8 characters, kept in clear so a user can tell keys apart
	// lastUsedEvery is how stale last_used_at may get before a use writes it again: a script
	// calling once a second must not turn every read into a write.
	lastUsedEvery = time.Minute
)

// Key is an API key as its owner sees it; the secret itself is shown once, at creation.
type Key struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Role       Role       `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type keyRow struct {
	ID         int64 `gorm:"primaryKey"`
	UserID     int64
	Name       string
	Prefix     string
	KeyHash    string
	Role       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func (keyRow) TableName() string { return "api_keys" }

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (r keyRow) key() Key {
	role, _ := ParseRole(r.Role)
	return Key{ID: r.ID, Name: r.Name, Prefix: r.Prefix, Role: role, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: utc(r.ExpiresAt), LastUsedAt: utc(r.LastUsedAt)}
}

func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewKey is what creating a key takes. A zero Role means the creator's own role.
type NewKey struct {
	Name      string
	Role      Role
	ExpiresAt *time.Time
}

// ErrKeyCreatesKey refuses a key made with another key: keys are made from a login session.
var ErrKeyCreatesKey = fmt.Errorf("%w: API keys are created with a login session (Authorization: Bearer), not with another API key", ErrForbidden)

// CreateKey makes a key for p's user, with a role no higher than p's (a viewer key cannot
// mint an admin key). It answers the key and its secret, which is not stored. Only a login
// session may make keys: a key that made keys could outlive its own expiry and revocation
// through them (issue 18), so a leaked key stays bounded by what it is.
func (s *Service) CreateKey(ctx context.Context, p Principal, n NewKey) (Key, string, error) {
	if p.KeyID != 0 {
		return Key{}, "", ErrKeyCreatesKey
	}
	name := strings.TrimSpace(n.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\x00\r\n") {
		return Key{}, "", invalid("name", "want 1 to 100 characters on one line")
	}
	role := n.Role
	if role == Public {
		role = p.Role
	}
	if role < Viewer || role > Admin {
		return Key{}, "", invalid("role", "want viewer, analyst or admin")
	}
	if role > p.Role {
		return Key{}, "", fmt.Errorf("%w: a key's role cannot be higher than yours (%s)", ErrForbidden, p.Role)
	}
	now := s.now()
	if n.ExpiresAt != nil && !n.ExpiresAt.After(now) {
		return Key{}, "", invalid("expires_at", "must be in the future")
	}
	b := make([]byte, keySecretLen)
	rand.Read(b)
	secret := keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	r := keyRow{UserID: p.User.ID, Name: name, Prefix: secret[:keyShownChars], KeyHash: hashKey(secret), Role: role.String(),
		CreatedAt: now, ExpiresAt: utc(n.ExpiresAt)}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return Key{}, "", fmt.Errorf("auth: create key: %w", err)
	}
	return r.key(), secret, nil
}

// ListKeys returns a user's keys that are not revoked, newest first.
func (s *Service) ListKeys(ctx context.Context, userID int64) ([]Key, error) {
	var rows []keyRow
	if err := s.db.WithContext(ctx).Where("user_id = ? AND revoked_at IS NULL", userID).Order("id DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("auth: list keys: %w", err)
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

// RevokeKey revokes one of userID's keys; from the next request on it is refused. Someone
// else's key is ErrNotFound, exactly like a key that does not exist.
func (s *Service) RevokeKey(ctx context.Context, userID, keyID int64) (Key, error) {
	var r keyRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ? AND user_id = ? AND revoked_at IS NULL", keyID, userID).First(&r).Error; err != nil {
			return notFound(err, fmt.Sprintf("api key %d", keyID))
		}
		return tx.Model(&keyRow{}).Where("id = ?", keyID).Update("revoked_at", s.now()).Error
	})
	return r.key(), err
}

// VerifyKey checks an X-API-Key value: known, not revoked, not expired, its owner active. The
// role is the lower of the key's and the owner's current one.
func (s *Service) VerifyKey(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, keyPrefix) || len(secret) != len(keyPrefix)+base64.RawURLEncoding.EncodedLen(keySecretLen) {
		return Principal{}, fmt.Errorf("%w: malformed API key", ErrUnauthenticated)
	}
	want := hashKey(secret)
	var row struct {
		K     keyRow  `gorm:"embedded"`
		Owner userRow `gorm:"embedded;embeddedPrefix:u_"`
	}
	err := s.db.WithContext(ctx).Table("api_keys AS k").
		Select("k.*, u.id AS u_id, u.email AS u_email, u.name AS u_name, u.role AS u_role, u.active AS u_active, "+
			"u.token_version AS u_token_version, u.last_login_at AS u_last_login_at, u.created_at AS u_created_at, u.updated_at AS u_updated_at").
		Joins("JOIN users AS u ON u.id = k.user_id").Where("k.key_hash = ?", want).Take(&row).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Principal{}, fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
		}
		return Principal{}, fmt.Errorf("auth: check key: %w", err)
	}
	now := s.now()
	switch {
	case subtle.ConstantTimeCompare([]byte(row.K.KeyHash), []byte(want)) != 1:
		return Principal{}, fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
	case row.K.RevokedAt != nil:
		return Principal{}, fmt.Errorf("%w: API key revoked", ErrUnauthenticated)
	case row.K.ExpiresAt != nil && !row.K.ExpiresAt.After(now):
		return Principal{}, fmt.Errorf("%w: API key expired", ErrUnauthenticated)
	case !row.Owner.Active:
		return Principal{}, fmt.Errorf("%w: account inactive", ErrUnauthenticated)
	}
	if row.K.LastUsedAt == nil || now.Sub(*row.K.LastUsedAt) > lastUsedEvery {
		// Best effort and off the request's path: on SQLite a write waits for the single writer
		// (a long ingest transaction), and a failed stamp must not fail the request it stamps.
		go func(id int64) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			s.db.WithContext(ctx).Model(&keyRow{}).Where("id = ?", id).Update("last_used_at", now)
		}(row.K.ID)
	}
	u := row.Owner.user()
	k := row.K.key()
	return Principal{User: u, Role: min(u.Role, k.Role), KeyID: k.ID}, nil
}
