package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/secretbox"
)

// secretFile keeps the generated JWT secret of the embedded default across restarts, so a
// restart does not log everybody out.
const secretFile = "jwt-secret"

// jwtSecret is VIGIL_JWT_SECRET, or for the embedded default (one api process, so one signer)
// a secret generated once and kept in the data dir. With VIGIL_REDIS_URL set, api replicas
// must share the key, so it must be configured.
func jwtSecret(cfg config.Config) ([]byte, error) {
	if cfg.Auth.JWTSecret != "" {
		return []byte(cfg.Auth.JWTSecret), nil
	}
	if cfg.RedisURL != "" {
		return nil, fmt.Errorf("%w: VIGIL_JWT_SECRET (or VIGIL_JWT_SECRET_FILE) is required when VIGIL_REDIS_URL is set: every api replica must sign tokens with the same key (openssl rand -base64 48)", config.ErrInvalid)
	}
	s, err := dataDirSecret(cfg.DataDir, secretFile, func() (string, error) {
		buf := make([]byte, 48)
		rand.Read(buf)
		return base64.RawURLEncoding.EncodeToString(buf), nil
	}, func(s string) error {
		if len(s) < auth.MinSecretBytes {
			return fmt.Errorf("holds fewer than %d characters", auth.MinSecretBytes)
		}
		return nil
	})
	return []byte(s), err
}

// keyFile keeps the generated encryption key of the embedded default.
const keyFile = "encryption-key"

// secretKeys is the keyring sealing secrets kept in the database: VIGIL_ENCRYPTION_KEY (with
// VIGIL_ENCRYPTION_OLD_KEYS), or for the embedded default (api, worker and scheduler in one
// process, one data dir) a key generated once into the data dir (only when generate is set:
// a migration must not leave a key file behind). A split deployment without
// the variable gets no keyring: its API refuses to store mailbox passwords, saying why.
func secretKeys(cfg config.Config, generate bool) (*secretbox.Keyring, error) {
	if cfg.Encryption.Key != nil {
		return secretbox.New(cfg.Encryption.Key, cfg.Encryption.OldKeys...)
	}
	if cfg.RedisURL != "" {
		return nil, nil
	}
	if !generate {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, keyFile)); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	s, err := dataDirSecret(cfg.DataDir, keyFile, secretbox.NewKey, func(s string) error {
		_, err := secretbox.ParseKey(s)
		return err
	})
	if err != nil {
		return nil, err
	}
	k, _ := secretbox.ParseKey(s)
	return secretbox.New(k)
}

// dataDirSecret reads a secret the embedded default keeps in its data dir (0600), generating
// it on first use. Two processes starting at once agree on the first one written.
func dataDirSecret(dir, name string, gen func() (string, error), check func(string) error) (string, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		if err := privateFile(path); err != nil {
			return "", err
		}
		s := strings.TrimSpace(string(b))
		if err := check(s); err != nil {
			return "", fmt.Errorf("%s: %w: delete it to have a new one generated (what it protected is lost)", path, err)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	s, err := gen()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process won the race: use its secret
		return dataDirSecret(dir, name, gen, check)
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, f.Close()
}

// privateFile makes path readable by its owner only, whatever mode it was created with (by an
// older version, by hand, or under a loose umask).
func privateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("make %s private (chmod 600): %w", path, err)
		}
	}
	return nil
}

// buildAuth makes the auth service, the audit log and the rate limiter of the api role.
func (a *App) buildAuth() error {
	secret, err := jwtSecret(a.Cfg)
	if err != nil {
		return err
	}
	a.Limiter = ratelimit.New(a.Redis, "vigil:")
	th := auth.NewThrottle(a.Limiter, auth.ThrottleConfig{Account: a.Cfg.Auth.LoginAccount, Address: a.Cfg.Auth.LoginAddress,
		IPv6Prefix: a.Cfg.Auth.IPv6Prefix})
	a.Auth, err = auth.New(a.Store.DB(), auth.Config{Secret: secret, AccessTTL: a.Cfg.Auth.AccessTTL, RefreshTTL: a.Cfg.Auth.RefreshTTL}, th)
	if err != nil {
		return err
	}
	a.Audit = audit.New(a.Store)
	return nil
}

// rates maps the configured limits onto the API's rate classes.
func rates(r config.RateLimits, tlsrpt ratelimit.Rate) httpapi.Rates {
	return httpapi.Rates{httpapi.RateAPI: r.API, httpapi.RateUpload: r.Upload, httpapi.RateExportCSV: r.ExportCSV,
		httpapi.RateExportPDF: r.ExportPDF, httpapi.RateAuth: r.Auth, httpapi.RateTLSRPT: tlsrpt}
}

// bootstrapAdmin creates the first admin when there are no users at all (DESIGN.md): from
// VIGIL_ADMIN_EMAIL and VIGIL_ADMIN_PASSWORD, or, on the embedded default without a password,
// with a generated one kept in the data dir (passwordFile) until it is changed. Passwords are
// never logged: logs travel further than a 0600 file, and a log overwritten at the next start
// (`make run | tee vigil.log`) lost the only copy.
func (a *App) bootstrapAdmin(ctx context.Context) error {
	n, err := a.Auth.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return a.checkPasswordFile(ctx)
	}
	email, pw := a.Cfg.Auth.AdminEmail, a.Cfg.Auth.AdminPassword
	generated := pw == ""
	if generated {
		if a.Cfg.RedisURL != "" {
			a.Log.Warn("no users yet: set VIGIL_ADMIN_PASSWORD (and VIGIL_ADMIN_EMAIL) or run `api admin create EMAIL` to create the first admin")
			return nil
		}
		pw = auth.GeneratePassword()
	}
	u, err := a.Auth.CreateUser(ctx, auth.NewUser{Email: email, Name: "Administrator", Password: pw, Role: auth.Admin})
	var ie *auth.InvalidError
	switch {
	case errors.Is(err, auth.ErrConflict):
		return nil // another api replica created it first
	case errors.As(err, &ie) && ie.Field == "password":
		return fmt.Errorf("%w: VIGIL_ADMIN_PASSWORD: %s", config.ErrInvalid, ie.Reason)
	case errors.As(err, &ie):
		return fmt.Errorf("%w: VIGIL_ADMIN_EMAIL: %s", config.ErrInvalid, ie.Reason)
	case err != nil:
		return fmt.Errorf("create the first admin: %w", err)
	}
	id := u.ID
	a.Audit.Record(ctx, audit.Entry{Actor: "vigil (first start)", Action: audit.UserCreate, Target: fmt.Sprintf("user:%d", id), Details: map[string]any{"email": email, "role": "admin"}})
	if generated {
		path, err := writePasswordFile(a.Cfg.DataDir, email, pw)
		if err != nil {
			return err
		}
		a.Log.Warn("created the first admin with a generated password, kept in password_file (0600) until it is changed: log in with it, then change it (PATCH /users/me) or reset it with `api admin reset-password`",
			"email", email, "password_file", path)
	} else {
		a.Log.Info("created the first admin from VIGIL_ADMIN_EMAIL and VIGIL_ADMIN_PASSWORD", "email", email)
	}
	return nil
}

// Admin runs `api admin create EMAIL` and `api admin reset-password EMAIL`. The password is
// VIGIL_ADMIN_PASSWORD(_FILE) when set (never a command-line argument, which other users of
// the machine can read), else a generated one printed to out.
func Admin(ctx context.Context, cfg config.Config, log *slog.Logger, cmd, email string, out io.Writer) error {
	a, err := Build(ctx, cfg, log, Options{Migrate: sqliteConfigured(cfg), NoRedis: true})
	if err != nil {
		return err
	}
	defer a.Close()
	// This process signs no token: any secret will do.
	svc, err := auth.New(a.Store.DB(), auth.Config{Secret: []byte(rand.Text() + rand.Text())}, nil)
	if err != nil {
		return err
	}
	log2 := audit.New(a.Store)
	pw, generated := cfg.Auth.AdminPassword, cfg.Auth.AdminPassword == ""
	if generated {
		pw = auth.GeneratePassword()
	}
	var u auth.User
	var action string
	switch cmd {
	case "create":
		u, err = svc.CreateUser(ctx, auth.NewUser{Email: email, Name: "Administrator", Password: pw, Role: auth.Admin})
		action = audit.UserCreate
	case "reset-password":
		if u, err = svc.UserByEmail(ctx, email); err == nil {
			u, _, err = svc.UpdateUser(ctx, u.ID, auth.Patch{Password: &pw})
		}
		action = audit.PasswordChange
	default:
		return fmt.Errorf("unknown admin command %q: want create or reset-password", cmd)
	}
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", cmd, email, err)
	}
	log2.Record(ctx, audit.Entry{Actor: "api admin " + cmd, Action: action, Target: fmt.Sprintf("user:%d", u.ID), Details: map[string]any{"email": u.Email}})
	fmt.Fprintf(out, "%s: %s (%s)\n", map[string]string{"create": "created", "reset-password": "password reset; sessions and API keys revoked"}[cmd], u.Email, u.Role)
	if generated {
		fmt.Fprintf(out, "password: %s\n", pw)
	}
	return nil
}

// passwordFile keeps the embedded default's generated first-admin password: "EMAIL PASSWORD"
// would need parsing by the README's snippet, so the file holds the password alone.
const passwordFile = "admin-password"

func writePasswordFile(dir, email, pw string) (string, error) {
	path := filepath.Join(dir, passwordFile)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	// Created 0600 and replaced whole: a file left by an older data dir is never reused.
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(pw + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return "", fmt.Errorf("keep the first admin's password (%s) in %s: %w", email, path, err)
	}
	return path, nil
}

// checkPasswordFile runs at every later start: while the generated password still opens the
// first admin's account, it says where it is; once changed, the file is deleted.
func (a *App) checkPasswordFile(ctx context.Context) error {
	path := filepath.Join(a.Cfg.DataDir, passwordFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	email := a.Cfg.Auth.AdminEmail
	ok, err := a.Auth.PasswordIs(ctx, email, strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if ok {
		a.Log.Info("the first admin's generated password is in password_file until it is changed", "email", email, "password_file", path)
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	a.Log.Info("removed the generated first-admin password file: that password was changed", "email", email, "password_file", path)
	return nil
}
