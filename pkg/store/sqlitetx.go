package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	_ "modernc.org/sqlite" // registers the "sqlite" driver immediateConnector wraps
)

// Every read-write transaction must begin IMMEDIATE. A DEFERRED one reads under a snapshot and
// takes the write lock only at its first write; when another connection has committed in
// between (a rollup, a login, a parse), that upgrade fails at once with SQLITE_BUSY ("database
// is locked"): the busy timeout cannot help, since waiting would not make the snapshot current.
// The earlier driver (glebarez/go-sqlite) ignored _txlock=immediate next to _time_format, and
// the trigger of process-reports with {"failed": true} failed so while files were ingested.
// immediateConnector begins every read-write transaction with BEGIN IMMEDIATE itself, so a
// writer takes the lock first (waiting up to busy_timeout for it) whatever the driver does
// with the DSN.

// sqliteConn is what the driver's connections implement.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

// immediateConnector opens driver connections whose transactions begin IMMEDIATE.
type immediateConnector struct {
	dsn string
	drv driver.Driver
}

// openSQLite is a database/sql pool on dsn with immediate write transactions.
func openSQLite(dsn string) (*sql.DB, error) {
	probe, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite driver: %w", err)
	}
	drv := probe.Driver()
	probe.Close()
	return sql.OpenDB(immediateConnector{dsn: dsn, drv: drv}), nil
}

func (c immediateConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(sqliteConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("store: sqlite driver connection %T lacks context methods", conn)
	}
	return immediateConn{sc}, nil
}

func (c immediateConnector) Driver() driver.Driver { return c.drv }

type immediateConn struct{ sqliteConn }

func (c immediateConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c immediateConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.sqliteConn.BeginTx(ctx, opts)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
		return nil, err
	}
	return immediateTx{c.sqliteConn}, nil
}

// immediateTx ends what BEGIN IMMEDIATE began. Commit and Rollback run without the request's
// context, as the driver's own transactions do: a cancelled caller must still release the
// lock.
type immediateTx struct{ c sqliteConn }

func (t immediateTx) Commit() error {
	_, err := t.c.ExecContext(context.Background(), "COMMIT", nil)
	return err
}

func (t immediateTx) Rollback() error {
	_, err := t.c.ExecContext(context.Background(), "ROLLBACK", nil)
	return err
}
