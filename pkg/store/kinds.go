package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// The other report kinds (pkg/tlsrpt, pkg/failure) keep their reports in tables of their own
// with the same list, detail and ingest-link shape; these helpers are that shape once.

// KindPage is one page of a report kind's list: where restricts a query over table (an alias
// such as "tls_reports r"), total counts every matching row, and the page (from 1) is read with
// cols in order.
func KindPage[T any](ctx context.Context, s *Store, table string, where func(*gorm.DB) *gorm.DB, cols, order string, page, size int) ([]T, int64, error) {
	db := s.db.WithContext(ctx)
	var total int64
	if err := where(db.Table(table)).Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count %s: %w", table, err)
	}
	var rows []T
	if err := where(db.Table(table)).Select(cols).Order(order).Limit(size).Offset((page - 1) * size).Scan(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("store: list %s: %w", table, err)
	}
	return rows, total, nil
}

// KindGet reads the row with this id (T's table), or ErrNotFound.
func KindGet[T any](ctx context.Context, s *Store, id int64) (T, error) {
	var r T
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return r, ErrNotFound
	}
	return r, err
}

// KindIngestIDs lists, ascending, the ids of the rows of table that each file stored (its
// ingest_id column: a report repeated by a later file keeps no link to it); a file without
// any is absent from the map.
func KindIngestIDs(ctx context.Context, s *Store, table string, ingestIDs []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(ingestIDs))
	if len(ingestIDs) == 0 {
		return out, nil
	}
	var links []struct{ ID, IngestID int64 }
	if err := s.db.WithContext(ctx).Table(table).Select("id", "ingest_id").Where("ingest_id IN ?", ingestIDs).
		Order("ingest_id, id").Scan(&links).Error; err != nil {
		return nil, fmt.Errorf("store: %s of %d ingests: %w", table, len(ingestIDs), err)
	}
	for _, l := range links {
		out[l.IngestID] = append(out[l.IngestID], l.ID)
	}
	return out, nil
}
