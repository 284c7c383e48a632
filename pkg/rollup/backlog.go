package rollup

import (
	"context"
	"fmt"
	"time"
)

// BacklogCap bounds the count Backlog makes, so that reading it costs an index range of at most
// this many rows however far behind the rollups are (a metrics scrape must stay cheap).
const BacklogCap = 100_000

// Backlog counts the stored reports above the highest one rolled up (at most BacklogCap) and
// tells when the first of them was stored. Reports are applied in id order, so this is the
// rollups' lag; one a failed batch left behind below that id is not seen here (the catch-up
// still applies it). Both lookups are on primary keys: no table scan.
func (r *Rollup) Backlog(ctx context.Context) (pending int64, oldest time.Time, err error) {
	db := r.db.WithContext(ctx)
	var top int64
	if err := db.Raw(`SELECT COALESCE(MAX(report_id), 0) FROM rollup_applied`).Scan(&top).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("rollup: backlog: %w", err)
	}
	if err := db.Raw(`SELECT COUNT(*) FROM (SELECT 1 FROM reports WHERE id > ? ORDER BY id LIMIT ?) b`, top, BacklogCap).Scan(&pending).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("rollup: backlog: %w", err)
	}
	if pending == 0 {
		return 0, time.Time{}, nil
	}
	var first struct{ CreatedAt time.Time }
	if err := db.Raw(`SELECT created_at FROM reports WHERE id > ? ORDER BY id LIMIT 1`, top).Scan(&first).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("rollup: backlog: %w", err)
	}
	return pending, first.CreatedAt, nil
}
