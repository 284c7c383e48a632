// Package testenv gives tests their backends: the embedded SQLite and miniredis always, plus
// real PostgreSQL and Redis when VIGIL_TEST_DATABASE_URL / VIGIL_TEST_REDIS_URL are set (CI sets
// both), so one run covers both dialects. Each test gets its own PostgreSQL schema or SQLite
// file and its own Redis database, and subtests are named after the backend, so a pass is never
// silent about what it exercised.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// Logger is quiet unless VIGIL_TEST_LOG=1.
func Logger() *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var schemaSeq atomic.Int64

// Backend is one pair of stores a suite runs on.
type Backend struct {
	Name string // "embedded" or "postgres+redis"
	real bool
}

// Real reports whether the backend is the real PostgreSQL + Redis pair.
func (b Backend) Real() bool { return b.real }

// Backends lists the embedded pair, and the real one when both variables are set.
func Backends() []Backend {
	out := []Backend{{Name: "embedded"}}
	if os.Getenv("VIGIL_TEST_DATABASE_URL") != "" && os.Getenv("VIGIL_TEST_REDIS_URL") != "" {
		out = append(out, Backend{Name: "postgres+redis", real: true})
	}
	return out
}

// Run runs fn as a subtest per backend.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	if len(Backends()) == 1 {
		t.Log("real-server suite not run: set VIGIL_TEST_DATABASE_URL and VIGIL_TEST_REDIS_URL (make test in CI does)")
	}
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// DatabaseURL returns a fresh, empty database for one test: a new schema on the configured
// PostgreSQL (dropped at the end), or a new SQLite file in a temp dir.
func (b Backend) DatabaseURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("VIGIL_TEST_DATABASE_URL")
	if !b.real {
		return "sqlite://" + filepath.Join(tb.TempDir(), "vigil.db")
	}
	schema := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{})
	if err != nil {
		tb.Fatalf("testenv: connect to VIGIL_TEST_DATABASE_URL: %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		tb.Fatalf("testenv: create schema: %v", err)
	}
	tb.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		if db, err := admin.DB(); err == nil {
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("testenv: VIGIL_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	tb.Logf("backend: PostgreSQL schema %s", schema)
	return u.String()
}

// Store opens and migrates a fresh store.
func (b Backend) Store(tb testing.TB) *store.Store {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, b.DatabaseURL(tb), Logger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return st
}

// Redis returns connection options for an empty Redis database of this test's own: on the
// real server, database number db (each test using the real server picks its own number so
// parallel tests and packages never share one; it is flushed first), else a new miniredis.
// Numbers in use: 1 ingest (36–37: its recovery watch; 38–39: cmd/api fault tests), 2–3 app, 4 schedule, 5 ratelimit, 6 auth, 7 httpapi, 8 app (auth),
// 10–12 analytics, 13 mailpoll, 24 app (alerts), 25–26 notify. Numbers from 16 need a server with more databases (.ci/run
// starts one with 64); blocks of four are reserved: 20–23 enrichment/geo/senders (20: app
// sender-intelligence end to end, 21: enrich:ingest tasks), 24–27
// alerting and notification, 28–31 web dashboard, 32–35 first-run/operations (32 ingest rejections, 33 app health, 34 ingests list, 35 rate limits), 36–39
// recovery/importer, 40–43 API contract, 44–47 security, 48–51 rollup speed, 52–55 exports,
// 56–59 ML and other report kinds (56 app ML end to end, 57 tlsrpt BenchmarkIntake).
func (b Backend) Redis(tb testing.TB, db int) asynq.RedisClientOpt {
	tb.Helper()
	base := os.Getenv("VIGIL_TEST_REDIS_URL")
	if !b.real {
		m := miniredis.RunT(tb)
		return asynq.RedisClientOpt{Addr: m.Addr()}
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("testenv: VIGIL_TEST_REDIS_URL: %v", err)
	}
	pw, _ := u.User.Password()
	opt := asynq.RedisClientOpt{Addr: u.Host, Password: pw, DB: db}
	c := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: pw, DB: db})
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		tb.Fatalf("testenv: flush redis db %d: %v", db, err)
	}
	tb.Logf("backend: Redis %s db %d", strings.TrimPrefix(base, "redis://"), db)
	return opt
}

// RedisURL is Redis for this test as a VIGIL_REDIS_URL value.
func (b Backend) RedisURL(tb testing.TB, db int) string {
	tb.Helper()
	opt := b.Redis(tb, db)
	if opt.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/%d", url.QueryEscape(opt.Password), opt.Addr, opt.DB)
	}
	return fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
}
