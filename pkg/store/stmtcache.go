package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// stmtCache keeps prepared statements for the few long, repeated write texts of ingestion
// (the full-chunk INSERT of records, the full-chunk rollup upserts) on SQLite. SQLite parses a
// statement's text at every prepare, and a 64-row upsert parsed once per chunk was a third of
// an import's CPU; the driver (modernc.org/sqlite) reuses a prepared handle across executions,
// so preparing once per connection removes that cost. gorm's own PrepareStmt cannot help here:
// inside a transaction it prepares on the transaction, and such a statement dies with it.
// PostgreSQL needs none of this: pgx caches its prepared statements per connection itself.
type stmtCache struct {
	mu    sync.Mutex
	db    *sql.DB
	stmts map[string]*sql.Stmt
}

// stmtCacheMax bounds the cache; callers cache fixed texts only (the rollup upserts: seven
// chunk sizes for each of some 30 tables), so it is never reached in practice, and past it
// statements simply run unprepared.
const stmtCacheMax = 1024

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	if len(c.stmts) >= stmtCacheMax {
		return nil, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}

// ExecRepeated runs a write whose text the caller runs many times (a full chunk of a batch
// insert) inside the transaction tx: prepared once per connection on SQLite, as is on
// PostgreSQL. Texts that vary (a chunk's tail) go through tx directly.
func (s *Store) ExecRepeated(ctx context.Context, tx *gorm.DB, query string, args ...any) error {
	_, err := s.execRepeated(ctx, tx, query, args...)
	return err
}

// execRepeated is ExecRepeated with the statement's result (rows affected).
func (s *Store) execRepeated(ctx context.Context, tx *gorm.DB, query string, args ...any) (sql.Result, error) {
	ts, err := s.repeated(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	if ts == nil {
		return tx.Statement.ConnPool.ExecContext(ctx, query, args...)
	}
	defer ts.Close()
	return ts.ExecContext(ctx, args...)
}

// scanRepeated runs a one-row query whose text runs many times in tx (once per file of a
// batch) into dest, prepared once per connection as ExecRepeated's writes are. No row is
// sql.ErrNoRows.
func (s *Store) scanRepeated(ctx context.Context, tx *gorm.DB, query string, args []any, dest ...any) error {
	ts, err := s.repeated(ctx, tx, query)
	if err != nil {
		return err
	}
	if ts == nil {
		return tx.Statement.ConnPool.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	defer ts.Close()
	return ts.QueryRowContext(ctx, args...).Scan(dest...)
}

// repeated is the cached statement of query bound to tx, or nil where there is none (not
// SQLite, not in a transaction, the cache full).
func (s *Store) repeated(ctx context.Context, tx *gorm.DB, query string) (*sql.Stmt, error) {
	if s.stmts == nil {
		return nil, nil
	}
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return nil, nil
	}
	st, err := s.stmts.get(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if st == nil {
		return nil, nil
	}
	return sqlTx.StmtContext(ctx, st), nil
}
