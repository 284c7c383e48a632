package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Issue 18: the embedded Redis listens on loopback, where any local user can connect: without
// its generated password nothing can be read, cleared or enqueued.
func TestEmbeddedRedisNeedsItsPassword(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	a, err := app.Build(context.Background(), cfg, testenv.Logger(), app.Options{Migrate: true, EmbeddedRedis: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	opt, ok := a.RedisOpt.(asynq.RedisClientOpt)
	if !ok || len(opt.Password) < 20 || !strings.HasPrefix(opt.Addr, "127.0.0.1:") {
		t.Fatalf("embedded Redis options %T %s (password of %d characters)", a.RedisOpt, opt.Addr, len(opt.Password))
	}
	ctx := context.Background()
	if err := a.Redis.Set(ctx, "vigil:probe", "1", 0).Err(); err != nil {
		t.Fatalf("the app's own client: %v", err)
	}
	for name, pw := range map[string]string{"no password": "", "a wrong one": "guess"} {
		other := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: pw, MaxRetries: -1})
		_, err := other.Get(ctx, "vigil:probe").Result()
		other.Close()
		if err == nil || !strings.Contains(strings.ToUpper(err.Error()), "AUTH") && !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("another local client with %s: %v, want an authentication error", name, err)
		}
	}
}

// Issue 18: the database, its -wal and -shm and the generated secrets are 0600 whatever the data
// dir's mode, including files left readable by an earlier start.
func TestDataDirFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An earlier start under a loose umask left these readable by everyone.
	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte("an-earlier-secret-of-at-least-thirty-two-bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, map[string]string{"VIGIL_DATA_DIR": dir})
	for range 2 { // the second start finds the files there
		a, err := app.Build(context.Background(), cfg, testenv.Logger(), app.Options{Migrate: true, EmbeddedRedis: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.BuildAuth(); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"vigil.db", "vigil.db-wal", "vigil.db-shm", "jwt-secret"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s is %v, want 0600", name, fi.Mode().Perm())
			}
		}
		a.Close()
		os.Chmod(filepath.Join(dir, "vigil.db"), 0o644)
	}
}
