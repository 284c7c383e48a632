package auth

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// User is an account. The password hash never leaves this package.
type User struct {
	ID           int64      `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name"`
	Role         Role       `json:"role"`
	Active       bool       `json:"active"`
	TokenVersion int64      `json:"-"`
	LastLoginAt  *time.Time `json:"last_login_at"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

type userRow struct {
	ID           int64 `gorm:"primaryKey"`
	Email        string
	Name         string
	PasswordHash string
	Role         string
	Active       bool
	TokenVersion int64
	LastLoginAt  *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (userRow) TableName() string { return "users" }

func (r userRow) user() User {
	role, _ := ParseRole(r.Role)
	u := User{ID: r.ID, Email: r.Email, Name: r.Name, Role: role, Active: r.Active, TokenVersion: r.TokenVersion,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.LastLoginAt != nil {
		t := r.LastLoginAt.UTC()
		u.LastLoginAt = &t
	}
	return u
}

const maxNameLength = 200

// NormalizeEmail trims and lower-cases an address and checks it is one bare address.
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", invalid("email", "required")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 {
		return "", invalid("email", "want one plain address such as alice@example.com")
	}
	return e, nil
}

func cleanName(s string) (string, error) {
	n := strings.TrimSpace(s)
	if !utf8.ValidString(n) || utf8.RuneCountInString(n) > maxNameLength || strings.ContainsAny(n, "\x00\r\n") {
		return "", invalid("name", "want at most %d characters on one line", maxNameLength)
	}
	return n, nil
}

// NewUser is what creating an account takes.
type NewUser struct {
	Email    string
	Name     string
	Password string
	Role     Role
}

// CreateUser adds an active account. An e-mail in use is ErrConflict.
func (s *Service) CreateUser(ctx context.Context, n NewUser) (User, error) {
	email, err := NormalizeEmail(n.Email)
	if err != nil {
		return User{}, err
	}
	name, err := cleanName(n.Name)
	if err != nil {
		return User{}, err
	}
	if n.Role < Viewer || n.Role > Admin {
		return User{}, invalid("role", "want viewer, analyst or admin")
	}
	if err := CheckPassword(n.Password, email); err != nil {
		return User{}, err
	}
	h, err := s.hash.hash(ctx, n.Password)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	r := userRow{Email: email, Name: name, PasswordHash: h, Role: n.Role.String(), Active: true, TokenVersion: 1, CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		if _, err2 := s.userByEmail(ctx, email); err2 == nil {
			return User{}, fmt.Errorf("user %s: %w: the e-mail is in use", email, ErrConflict)
		}
		return User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return r.user(), nil
}

func (s *Service) userRow(ctx context.Context, db *gorm.DB, id int64) (userRow, error) {
	var r userRow
	if err := db.WithContext(ctx).First(&r, id).Error; err != nil {
		return r, notFound(err, fmt.Sprintf("user %d", id))
	}
	return r, nil
}

func (s *Service) userByEmail(ctx context.Context, email string) (userRow, error) {
	var r userRow
	err := s.db.WithContext(ctx).Where("email = ?", email).First(&r).Error
	return r, notFound(err, "user")
}

// GetUser returns one account.
func (s *Service) GetUser(ctx context.Context, id int64) (User, error) {
	r, err := s.userRow(ctx, s.db, id)
	return r.user(), err
}

// UserByEmail finds an account by its address (any case).
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	r, err := s.userByEmail(ctx, e)
	return r.user(), err
}

// CountUsers tells whether any account exists (the first-start bootstrap).
func (s *Service) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&userRow{}).Count(&n).Error
	return n, err
}

// ListUsers returns one page of accounts by id and the total.
func (s *Service) ListUsers(ctx context.Context, page, size int) ([]User, int64, error) {
	var total int64
	q := s.db.WithContext(ctx).Model(&userRow{})
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	var rows []userRow
	if err := q.Order("id").Offset((page - 1) * size).Limit(size).Find(&rows).Error; err != nil {
		return nil, 0, err
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		out[i] = r.user()
	}
	return out, total, nil
}

// Patch is an admin's change to an account; nil fields stay as they are.
type Patch struct {
	Email    *string
	Name     *string
	Role     *Role
	Active   *bool
	Password *string
}

// Changes says what an update did, for the audit log.
type Changes struct {
	Fields  []string
	Revoked bool // the user's sessions and keys were revoked
}

// UpdateUser applies an admin's patch. A new password, a deactivation or a role change revoke
// every session and API key of the user; a change that would leave no active admin is
// ErrConflict.
func (s *Service) UpdateUser(ctx context.Context, id int64, p Patch) (User, Changes, error) {
	var ch Changes
	set := map[string]any{}
	if p.Email != nil {
		e, err := NormalizeEmail(*p.Email)
		if err != nil {
			return User{}, ch, err
		}
		set["email"] = e
	}
	if p.Name != nil {
		n, err := cleanName(*p.Name)
		if err != nil {
			return User{}, ch, err
		}
		set["name"] = n
	}
	if p.Role != nil && (*p.Role < Viewer || *p.Role > Admin) {
		return User{}, ch, invalid("role", "want viewer, analyst or admin")
	}
	var out userRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := s.lockUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if p.Password != nil {
			email := cur.Email
			if e, ok := set["email"].(string); ok {
				email = e
			}
			if err := CheckPassword(*p.Password, email); err != nil {
				return err
			}
			h, err := s.hash.hash(ctx, *p.Password)
			if err != nil {
				return err
			}
			set["password_hash"] = h
			ch.Revoked = true
		}
		if p.Role != nil && p.Role.String() != cur.Role {
			set["role"] = p.Role.String()
			ch.Revoked = true
		}
		if p.Active != nil && *p.Active != cur.Active {
			set["active"] = *p.Active
			ch.Revoked = ch.Revoked || !*p.Active
		}
		for k := range set {
			ch.Fields = append(ch.Fields, k)
		}
		if len(set) == 0 {
			out = cur
			return nil
		}
		if ch.Revoked {
			set["token_version"] = gorm.Expr("token_version + 1")
		}
		set["updated_at"] = s.now()
		if err := tx.Model(&userRow{}).Where("id = ?", id).Updates(set).Error; err != nil {
			if e, ok := set["email"].(string); ok && e != cur.Email {
				if _, err2 := s.userByEmail(ctx, e); err2 == nil {
					return fmt.Errorf("user %s: %w: the e-mail is in use", e, ErrConflict)
				}
			}
			return fmt.Errorf("auth: update user %d: %w", id, err)
		}
		if err := s.keepAnAdmin(tx); err != nil {
			return err
		}
		if ch.Revoked {
			if err := s.revokeAll(tx, id, "account changed"); err != nil {
				return err
			}
		}
		out, err = s.userRow(ctx, tx, id)
		return err
	})
	return out.user(), ch, err
}

// DeleteUser removes an account with its sessions and keys; the audit log keeps its history.
func (s *Service) DeleteUser(ctx context.Context, id int64) (User, error) {
	var del userRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := s.lockUser(ctx, tx, id)
		if err != nil {
			return err
		}
		del = cur
		if err := tx.Where("user_id = ?", id).Delete(&keyRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", id).Delete(&sessionRow{}).Error; err != nil {
			return err
		}
		if err := tx.Delete(&userRow{}, id).Error; err != nil {
			return err
		}
		return s.keepAnAdmin(tx)
	})
	return del.user(), err
}

// lockUser reads a user inside tx. On PostgreSQL it also locks every active admin row, so two
// concurrent demotions of the last two admins cannot both see the other one still there; on
// SQLite the transaction already holds the only write lock.
func (s *Service) lockUser(ctx context.Context, tx *gorm.DB, id int64) (userRow, error) {
	if s.postgres() {
		var ids []int64
		if err := tx.Model(&userRow{}).Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("(role = ? AND active) OR id = ?", Admin.String(), id).Order("id").Pluck("id", &ids).Error; err != nil {
			return userRow{}, err
		}
	}
	return s.userRow(ctx, tx, id)
}

func (s *Service) keepAnAdmin(tx *gorm.DB) error {
	var n int64
	if err := tx.Model(&userRow{}).Where("role = ? AND active", Admin.String()).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: this would leave no active admin", ErrConflict)
	}
	return nil
}

// ChangePassword is a user's change of their own password: it needs the current one, and it
// revokes every session and API key of the user (the caller logs in again). The current
// password is guessed against the same lockout as logins (the account's and the address's
// counters), so a stolen session cannot try passwords faster than the login form allows.
func (s *Service) ChangePassword(ctx context.Context, id int64, current, next string, m Meta) error {
	r, err := s.userRow(ctx, s.db, id)
	if err != nil {
		return err
	}
	if s.throttle != nil {
		if err := s.throttle.begin(ctx, r.Email, m.IP); err != nil {
			return err
		}
	}
	ok, err := s.verifyCurrent(ctx, current, r.PasswordHash)
	if s.throttle != nil {
		verdict := err
		if err == nil && !ok {
			verdict = ErrInvalidCredentials
		}
		if terr := s.throttle.finish(ctx, r.Email, m.IP, verdict); terr != nil && verdict == nil {
			return terr
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		return invalid("current_password", "does not match")
	}
	_, _, err = s.UpdateUser(ctx, id, Patch{Password: &next})
	return err
}

// verifyCurrent checks a password given to confirm a change. Like a login it is strict UTF-8
// and bounded: anything else cannot be the password.
func (s *Service) verifyCurrent(ctx context.Context, pw, hash string) (bool, error) {
	if len(pw) > MaxPasswordBytes {
		return false, nil
	}
	return s.hash.verify(ctx, pw, hash)
}

// UpdateName is a user's change of their own display name.
func (s *Service) UpdateName(ctx context.Context, id int64, name string) (User, error) {
	u, _, err := s.UpdateUser(ctx, id, Patch{Name: &name})
	return u, err
}
