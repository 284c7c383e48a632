package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm/logger"
)

// gormLog sends gorm's messages to slog. Unlike gorm's own slog adapter it renders a query's
// SQL only when it will be logged (an error or a slow query): rendering it for every statement
// cost 8% of ingestion time. The SQL is logged without its values (ParamsFilter).
type gormLog struct {
	log  *slog.Logger
	slow time.Duration
}

func (g gormLog) LogMode(logger.LogLevel) logger.Interface { return g }

// ParamsFilter keeps a statement's values out of the SQL that is logged: gorm renders the SQL
// with its placeholders ($1, ?) instead of filling them in. A failed UPDATE of a user carries
// a password hash, an INSERT of a key its hash, a mailbox its sealed password; none of them
// may reach a log (issue 18).
func (g gormLog) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

func (g gormLog) Info(ctx context.Context, msg string, args ...any) {
	g.log.InfoContext(ctx, msg, "args", args)
}

func (g gormLog) Warn(ctx context.Context, msg string, args ...any) {
	g.log.WarnContext(ctx, msg, "args", args)
}

func (g gormLog) Error(ctx context.Context, msg string, args ...any) {
	g.log.ErrorContext(ctx, msg, "args", args)
}

func (g gormLog) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, logger.ErrRecordNotFound) && !errors.Is(err, context.Canceled):
		sql, _ := fc()
		g.log.WarnContext(ctx, "query failed", "sql", truncate(sql, 500), "duration", elapsed, "err", err)
	case elapsed > g.slow:
		sql, rows := fc()
		g.log.WarnContext(ctx, "slow query", "sql", truncate(sql, 500), "rows", rows, "duration", elapsed)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
