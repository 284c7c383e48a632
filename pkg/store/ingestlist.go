package store

import (
	"context"
	"fmt"
	"time"
)

// IngestFilter selects received files for GET /api/ingests; zero fields select everything.
type IngestFilter struct {
	Status string
	Source string
	// Start and End bound received_at: Start <= received_at < End.
	Start, End time.Time
}

// ListIngests returns one page of received files, newest first (by when they were received,
// then by id), and how many match. Migration 00011 indexes both orders a filter may take.
func (s *Store) ListIngests(ctx context.Context, f IngestFilter, p Page) ([]Ingest, int64, error) {
	q := s.db.WithContext(ctx).Model(&Ingest{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Source != "" {
		q = q.Where("source = ?", f.Source)
	}
	if !f.Start.IsZero() {
		q = q.Where("received_at >= ?", f.Start.UTC())
	}
	if !f.End.IsZero() {
		q = q.Where("received_at < ?", f.End.UTC())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count ingests: %w", err)
	}
	var out []Ingest
	if total > 0 {
		err := q.Order("received_at DESC, id DESC").Offset(p.offset()).Limit(p.Size).Find(&out).Error
		if err != nil {
			return nil, 0, fmt.Errorf("store: list ingests: %w", err)
		}
	}
	return out, total, nil
}

// IngestsReportIDs is IngestReportIDs for several files in one query: every file's report ids
// in ascending order (absent for a file without reports).
func (s *Store) IngestsReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(ingestIDs))
	if len(ingestIDs) == 0 {
		return out, nil
	}
	var links []IngestReport
	err := s.db.WithContext(ctx).Select("ingest_id", "report_id").Where("ingest_id IN ?", ingestIDs).
		Order("ingest_id, report_id").Find(&links).Error
	if err != nil {
		return nil, fmt.Errorf("store: reports of %d ingests: %w", len(ingestIDs), err)
	}
	for _, l := range links {
		out[l.IngestID] = append(out[l.IngestID], l.ReportID)
	}
	return out, nil
}
