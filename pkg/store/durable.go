package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Durable returns once every write this process committed before the call is on disk. The
// pipeline writes its results with asynchronous commits (the async pool): a PostgreSQL crash
// can lose the last of them, so a task must not complete, and the queue forget it, before
// they are durable. On PostgreSQL one synchronous commit of a transaction that wrote WAL waits
// for the WAL to be flushed up to its own commit record, which lies after every earlier
// commit's: one flush covers all the asynchronous commits before it, and concurrent callers
// share flushes. The transaction writes a logical-decoding message (one small WAL record, no
// table, any role may): a transaction that only took an id writes no WAL before its commit
// record, and PostgreSQL then skips the flush (TestDurableSurvivesCrash caught exactly that).
// On SQLite every commit already survives a crash of the process.
func (s *Store) Durable(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	if err := s.db.WithContext(ctx).Exec("SELECT pg_logical_emit_message(true, 'vigil', 'durable')").Error; err != nil {
		return fmt.Errorf("store: flush commits: %w", err)
	}
	return nil
}

// IsUnavailable says whether err means a server could not be reached or is not serving right
// now (refused or dropped connection, shutting down or starting up, SQLite busy): the request
// may succeed if tried again shortly, so callers answer 503 with Retry-After rather than 500,
// and recovery runs once the server answers again. Errors about the statement or the data
// are not.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01–57P03: admin/crash shutdown, cannot connect now;
		// 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &connErr), errors.As(err, &opErr), errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	msg := err.Error()
	// pgconn wraps a dropped connection without a type ("conn closed", "unexpected EOF"); go-redis
	// reports a closed pool by text; SQLite reports a lock held too long as SQLITE_BUSY.
	for _, s := range []string{"conn closed", "connection reset", "connection refused", "broken pipe", "unexpected EOF",
		"database is locked", "SQLITE_BUSY", "the database system is", "server closed the connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
