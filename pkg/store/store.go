// Package store persists ingests, raw files, reports and records through gorm on PostgreSQL
// (production) or SQLite (the embedded default). The two dialects share every query; the few
// places where they differ (migrations, write serialisation) are decided once in Open.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sqlite "github.com/libtnb/sqlite"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/migrations"
)

// Dialect names the SQL dialect behind a Store.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Sentinel errors the HTTP layer and the pipeline branch on.
var (
	ErrNotFound    = errors.New("not found")
	ErrStaleSchema = errors.New("database schema is not up to date")
)

// Store is safe for concurrent use.
type Store struct {
	db *gorm.DB
	// async is the pool for writes that may be lost in a database crash without loss to the
	// user (processing results: the file stays pending and is parsed again). On PostgreSQL its
	// sessions commit without waiting for the WAL flush; on SQLite it is db.
	async   *gorm.DB
	dialect Dialect
	// SQLite has one writer at a time; taking this lock before a write transaction turns
	// "database is locked" retries inside the driver into an orderly queue in this process.
	// Other processes (an `api import` next to a running server) wait on busy_timeout.
	writeMu *sync.Mutex
	log     *slog.Logger

	batchSQLOnce sync.Once
	batchSQL     string
	// stmts (SQLite only) prepares the repeated write texts once per connection.
	stmts *stmtCache
}

// Open connects to dsn: postgres://… or postgresql://… for PostgreSQL, sqlite://PATH for SQLite.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	gcfg := &gorm.Config{
		Logger:                 gormLog{log: log.With("component", "gorm"), slow: 2 * time.Second},
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
	s := &Store{log: log}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = Postgres
		s.db, err = gorm.Open(postgres.New(postgres.Config{DSN: dsn}), gcfg)
		if err == nil {
			s.async, err = gorm.Open(postgres.New(postgres.Config{DSN: withParam(dsn, "synchronous_commit", "off")}), gcfg)
		}
	case strings.HasPrefix(dsn, "sqlite://"):
		s.dialect = SQLite
		s.writeMu = &sync.Mutex{}
		path := strings.TrimPrefix(dsn, "sqlite://")
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
		if err := privateDatabase(path); err != nil {
			return nil, err
		}
		var sqlDB *sql.DB
		if sqlDB, err = openSQLite(sqliteDSN(path)); err == nil {
			s.db, err = gorm.Open(sqlite.Dialector{Conn: sqlDB}, gcfg)
			s.stmts = &stmtCache{db: sqlDB}
		}
		s.async = s.db
	default:
		return nil, fmt.Errorf("store: unsupported database URL scheme in %q", redact(dsn))
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", s.dialect, err)
	}
	pools := []*gorm.DB{s.db}
	if s.async != s.db {
		pools = append(pools, s.async)
	}
	for _, g := range pools {
		sqlDB, err := g.DB()
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if s.dialect == SQLite {
			// Readers never block the writer in WAL mode; a handful of connections is plenty.
			sqlDB.SetMaxOpenConns(8)
		} else {
			// Two pools per process: keep a fleet of workers well inside max_connections.
			sqlDB.SetMaxOpenConns(16)
			sqlDB.SetMaxIdleConns(16)
		}
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		if err := sqlDB.PingContext(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("store: connect to %s: %w", s.dialect, err)
		}
	}
	return s, nil
}

// withParam adds a query parameter to a postgres:// URL; pgx sends unknown ones to the server
// as session settings.
func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// sqliteDSN sets what every connection needs: WAL so readers and the writer coexist, a busy
// timeout so a second process waits instead of failing, foreign keys on, and a sortable time
// format. Write transactions begin IMMEDIATE (a deferred one that upgrades later can fail with
// SQLITE_BUSY no timeout helps): _txlock asks the driver, and openSQLite makes sure of it
// (sqlitetx.go).
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
}

func redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.Index(dsn, "://"); j > 0 && j < i {
			return dsn[:j+3] + "…" + dsn[i:]
		}
	}
	return dsn
}

// Dialect tells which database the store talks to.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes gorm for the packages that own hand-written aggregate queries.
func (s *Store) DB() *gorm.DB { return s.db }

// Close releases the connection pools.
func (s *Store) Close() error {
	var errs []error
	if s.stmts != nil {
		s.stmts.close()
	}
	pools := []*gorm.DB{s.db}
	if s.async != s.db {
		pools = append(pools, s.async)
	}
	for _, g := range pools {
		if g == nil {
			continue
		}
		if sqlDB, err := g.DB(); err == nil {
			errs = append(errs, sqlDB.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping checks the database answers (for /ready).
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// WriteDerived runs fn in one transaction that writes only what is derived from stored data
// (the rollups): serialised per process on SQLite like every write here, and on PostgreSQL
// committed without waiting for the WAL flush, since a crash that loses such a commit loses the
// claim it wrote with it (rollup_applied), and the rows are derived again.
func (s *Store) WriteDerived(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.writeAsync(ctx, fn)
}

// LockWrites takes the process's SQLite write lock for a transaction the caller runs on
// database/sql itself (pkg/senders' rebuilds); unlock releases it. On PostgreSQL it does
// nothing. Without it such a transaction meets the other writers through busy_timeout, whose
// sleeps grow to 100 ms a try, and loses to them under load ("database is locked").
func (s *Store) LockWrites() (unlock func()) {
	if s.writeMu == nil {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

// write runs fn in one transaction, serialised per process on SQLite.
func (s *Store) write(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.writeOn(ctx, s.db, fn)
}

// writeAsync is write on the pool whose commits do not wait for the WAL flush.
func (s *Store) writeAsync(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.writeOn(ctx, s.async, fn)
}

func (s *Store) writeOn(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	if s.writeMu != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	return db.WithContext(ctx).Transaction(fn)
}

// writeStmt runs a single-statement write outside an explicit transaction (one round trip
// less each way), still serialised on SQLite.
func (s *Store) writeStmt(ctx context.Context, fn func(db *gorm.DB) error) error {
	if s.writeMu != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	return fn(s.db.WithContext(ctx))
}

func (s *Store) goose() (*goose.Provider, error) {
	fsys, err := migrations.For(string(s.dialect))
	if err != nil {
		return nil, err
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	d := goose.DialectPostgres
	if s.dialect == SQLite {
		d = goose.DialectSQLite3
	}
	return goose.NewProvider(d, sqlDB, fsys)
}

// Migrate applies every pending migration and returns how many ran.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	p, err := s.goose()
	if err != nil {
		return 0, fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("store: migrate: %w", err)
	}
	for _, r := range res {
		s.log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return len(res), nil
}

// CheckSchema refuses to run against a database whose schema is behind this binary: the worker
// and scheduler never migrate by themselves (a half-upgraded fleet must not race on DDL).
func (s *Store) CheckSchema(ctx context.Context) error {
	p, err := s.goose()
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("store: check schema: %w", err)
	}
	if pending {
		cur, _ := p.GetDBVersion(ctx)
		return fmt.Errorf("%w: database is at version %d; run `api migrate` first", ErrStaleSchema, cur)
	}
	return nil
}

// privateDatabase makes the SQLite database and its -wal and -shm files readable by their
// owner only, whatever the data dir's mode or the umask: they hold password hashes and sealed
// secrets. SQLite creates -wal and -shm with the database file's permissions, so creating that
// file 0600 before the driver does covers the files made later.
func privateDatabase(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("store: make %s private (chmod 600): %w", p, err)
			}
		}
	}
	return nil
}
