package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBAuth is this file's Redis database on the real server.
const redisDBAuth = 8

// syncBuffer collects log output written from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// generatedPassword reads the first-start admin password from the data dir, where README's
// snippet reads it, and checks the file is 0600 and that no log line carries the password.
func generatedPassword(t *testing.T, cfg config.Config, logs *syncBuffer) string {
	t.Helper()
	path := filepath.Join(cfg.DataDir, "admin-password")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want a 0600 file", path, fi, err)
	}
	b, _ := os.ReadFile(path)
	pw := strings.TrimSpace(string(b))
	if len(pw) < 12 {
		t.Fatalf("generated password %q too short", pw)
	}
	if strings.Contains(logs.String(), pw) {
		t.Fatalf("the generated password was logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), path) {
		t.Fatalf("the log does not say where the password is (%s):\n%s", path, logs)
	}
	return pw
}

// serveUntil runs the embedded default until stop is called, which waits for it to end.
func serveUntil(t *testing.T, cfg config.Config, logs *syncBuffer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, jsonLogger(logs)) }()
	waitHTTP(t, "http://"+cfg.HTTPAddr)
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
}

// The embedded default keeps its generated JWT secret and users across a restart. The
// generated password stays in the data dir, so README's login works at every start (issue
// 19: it was logged once and `make run | tee vigil.log` overwrote it), until it is changed.
func TestEmbeddedRestartKeepsSecretAndUsers(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	base := "http://" + cfg.HTTPAddr
	logs := &syncBuffer{}
	stop := serveUntil(t, cfg, logs)
	c := login(t, base, config.DefaultAdminEmail, generatedPassword(t, cfg, logs))
	stop()
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "jwt-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jwt-secret: %v %v", fi, err)
	}
	again := &syncBuffer{}
	stop = serveUntil(t, cfg, again)
	// The second start says where the password still is, and it still logs in.
	pw := generatedPassword(t, cfg, again)
	login(t, base, config.DefaultAdminEmail, pw)
	// The token of the first run is still good: same secret, session in the database.
	resp := c.do(t, http.MethodGet, "/users/me", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token across a restart: %d", resp.StatusCode)
	}
	resp, err := http.Get(base + "/api/reports")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/reports without credentials: %d, want 401", resp.StatusCode)
	}
	// Changed: the next start forgets the file.
	body := `{"current_password":"` + pw + `","password":"a brand new admin passphrase"}`
	resp = c.do(t, http.MethodPatch, "/users/me", "application/json", strings.NewReader(body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("change password: %d", resp.StatusCode)
	}
	stop()
	third := &syncBuffer{}
	serveUntil(t, cfg, third)()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "admin-password")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin-password after the password changed: %v, want it removed", err)
	}
	if !strings.Contains(third.String(), "removed the generated first-admin password file") {
		t.Fatalf("removal not logged:\n%s", third)
	}
}

// Shared Redis means several api replicas: the secret must be configured, not generated.
func TestSharedRedisNeedsJWTSecret(t *testing.T) {
	t.Parallel()
	b := testenv.Backends()[0]
	env := map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t), "VIGIL_REDIS_URL": b.RedisURL(t, redisDBAuth)}
	cfg := testConfig(t, env)
	cfg.Auth.JWTSecret = ""
	err := app.Serve(context.Background(), cfg, testenv.Logger())
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "VIGIL_JWT_SECRET") {
		t.Fatalf("serve on shared Redis without a secret: %v, want an error naming VIGIL_JWT_SECRET", err)
	}
	cfg.Auth.JWTSecret = "x-secret-of-at-least-thirty-two-bytes-long"
	cfg.Auth.AdminPassword = "password1234"
	err = app.Serve(context.Background(), cfg, testenv.Logger())
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "VIGIL_ADMIN_PASSWORD") {
		t.Fatalf("a common first admin password: %v, want an error naming VIGIL_ADMIN_PASSWORD", err)
	}
}

// `api admin create` and `api admin reset-password`: generated or from VIGIL_ADMIN_PASSWORD,
// never from the command line; a reset logs the user out everywhere.
func TestAdminCommands(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		env := map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t)}
		cfg := testConfig(t, env)
		if err := app.Migrate(context.Background(), cfg, testenv.Logger(), io.Discard); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := app.Admin(context.Background(), cfg, testenv.Logger(), "create", "Ops@Example.com", &out); err != nil {
			t.Fatal(err)
		}
		pw := strings.TrimPrefix(lastLine(out.String()), "password: ")
		if !strings.Contains(out.String(), "created: ops@example.com (admin)") || len(pw) < 12 {
			t.Fatalf("create output %q", out.String())
		}
		if err := app.Admin(context.Background(), cfg, testenv.Logger(), "create", "ops@example.com", io.Discard); err == nil {
			t.Fatal("creating the same admin twice succeeded")
		}
		// Serve on the same database: no bootstrap admin is added, and the created one logs in.
		logs := &syncBuffer{}
		run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, jsonLogger(logs)) })
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, "ops@example.com", pw)
		var users struct {
			Total int `json:"total"`
		}
		getJSON(t, c, "/users", &users)
		if users.Total != 1 {
			t.Fatalf("%d users, want only the one created by the command", users.Total)
		}
		cfg.Auth.AdminPassword = "a chosen new passphrase"
		out.Reset()
		if err := app.Admin(context.Background(), cfg, testenv.Logger(), "reset-password", "ops@example.com", &out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "password:") {
			t.Fatalf("a chosen password was printed: %q", out.String())
		}
		resp := c.do(t, http.MethodGet, "/users/me", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token after reset-password: %d, want 401", resp.StatusCode)
		}
		login(t, base, "ops@example.com", "a chosen new passphrase")
		if err := app.Admin(context.Background(), cfg, testenv.Logger(), "reset-password", "nobody@example.com", io.Discard); err == nil {
			t.Fatal("reset-password of an unknown user succeeded")
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// Only a process that may seal a password makes the embedded encryption key: a migration or
// an inline import leaves no key file behind, and the next start makes it.
func TestEncryptionKeyFile(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	path := filepath.Join(cfg.DataDir, "encryption-key")
	if err := app.Migrate(context.Background(), cfg, testenv.Logger(), io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after migrate: %v, want no key file", err)
	}
	a, err := app.Build(context.Background(), cfg, testenv.Logger(), app.Options{Migrate: true, EmbeddedRedis: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after a start: %v %v", fi, err)
	}
	first, _ := os.ReadFile(path)
	a, err = app.Build(context.Background(), cfg, testenv.Logger(), app.Options{Migrate: true, NoRedis: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if again, _ := os.ReadFile(path); string(again) != string(first) {
		t.Fatal("the key changed")
	}
}
