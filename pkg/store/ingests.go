package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// NewFile is what a source hands over: raw bytes already hashed, plus provenance.
type NewFile struct {
	SHA256     string
	Filename   string
	Source     string
	SourceRef  string
	Size       int64
	ReceivedAt time.Time
	Encoding   string // how Data is stored: identity or gzip
	Data       []byte
}

// CreateIngest stores a raw file as pending. The same bytes twice are one file: created is
// false and the first file's ingest is returned, whoever wins a concurrent race.
func (s *Store) CreateIngest(ctx context.Context, f NewFile) (ing Ingest, created bool, err error) {
	now := time.Now().UTC()
	ing = Ingest{SHA256: f.SHA256, Filename: f.Filename, Source: f.Source, SourceRef: f.SourceRef,
		SizeBytes: f.Size, Status: StatusPending, ReceivedAt: f.ReceivedAt.UTC(), CreatedAt: now, UpdatedAt: now}
	err = s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "sha256"}}, DoNothing: true}).Create(&ing)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		created = true
		return tx.Create(&RawFile{IngestID: ing.ID, Encoding: f.Encoding, Data: f.Data}).Error
	})
	if err != nil {
		return Ingest{}, false, fmt.Errorf("store: create ingest: %w", err)
	}
	if !created {
		if err := s.db.WithContext(ctx).Where("sha256 = ?", f.SHA256).Take(&ing).Error; err != nil {
			return Ingest{}, false, fmt.Errorf("store: find ingest by sha256: %w", err)
		}
	}
	return ing, created, nil
}

// GetIngest returns one ingest or ErrNotFound.
func (s *Store) GetIngest(ctx context.Context, id int64) (Ingest, error) {
	var ing Ingest
	err := s.db.WithContext(ctx).Take(&ing, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Ingest{}, fmt.Errorf("ingest %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Ingest{}, fmt.Errorf("store: get ingest %d: %w", id, err)
	}
	return ing, nil
}

// GetIngests returns the ingests with the given ids, in no particular order.
func (s *Store) GetIngests(ctx context.Context, ids []int64) ([]Ingest, error) {
	var out []Ingest
	for start := 0; start < len(ids); start += 500 {
		var part []Ingest
		if err := s.db.WithContext(ctx).Where("id IN ?", ids[start:min(start+500, len(ids))]).Find(&part).Error; err != nil {
			return nil, fmt.Errorf("store: get ingests: %w", err)
		}
		out = append(out, part...)
	}
	return out, nil
}

// IngestReportIDs lists the reports a file yielded (new ones and the ones it repeated).
func (s *Store) IngestReportIDs(ctx context.Context, ingestID int64) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&IngestReport{}).Where("ingest_id = ?", ingestID).Order("report_id").Pluck("report_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: ingest %d reports: %w", ingestID, err)
	}
	return ids, nil
}

// RawFile returns the stored original of an ingest.
func (s *Store) RawFile(ctx context.Context, ingestID int64) (RawFile, error) {
	var f RawFile
	err := s.db.WithContext(ctx).Take(&f, "ingest_id = ?", ingestID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RawFile{}, fmt.Errorf("raw file of ingest %d: %w", ingestID, ErrNotFound)
	}
	if err != nil {
		return RawFile{}, fmt.Errorf("store: raw file %d: %w", ingestID, err)
	}
	return f, nil
}

// BeginAttempt counts a parse attempt on a pending file and returns it; ok is false when the
// file is not pending (already finished: nothing to do). The count shows people which files
// keep failing.
func (s *Store) BeginAttempt(ctx context.Context, id int64) (ing Ingest, ok bool, err error) {
	err = s.writeStmt(ctx, func(db *gorm.DB) error {
		res := db.Model(&ing).Clauses(clause.Returning{}).Where("id = ? AND status = ?", id, StatusPending).
			Updates(map[string]any{"attempts": gorm.Expr("attempts + 1"), "updated_at": time.Now().UTC()})
		ok = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return Ingest{}, false, fmt.Errorf("store: begin attempt on ingest %d: %w", id, err)
	}
	if !ok {
		ing, err = s.GetIngest(ctx, id)
		return ing, false, err
	}
	return ing, true, nil
}

// ResetIngest puts a file back to pending so it is parsed again (after a parser fix).
func (s *Store) ResetIngest(ctx context.Context, id int64) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		return tx.Model(&Ingest{}).Where("id = ?", id).
			Updates(map[string]any{"status": StatusPending, "error": "", "updated_at": time.Now().UTC(), "processed_at": nil}).Error
	})
}

// StalePending lists files still pending whose last touch is older than before: their task
// was lost (Redis restarted empty, an enqueue failed) or is stuck.
func (s *Store) StalePending(ctx context.Context, before time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&Ingest{}).Where("status = ? AND updated_at < ?", StatusPending, before.UTC()).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: stale pending: %w", err)
	}
	return ids, nil
}

// TouchIngests marks files as just re-enqueued so the next sweep leaves them alone for a while.
func (s *Store) TouchIngests(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		return tx.Model(&Ingest{}).Where("id IN ? AND status = ?", ids, StatusPending).Update("updated_at", time.Now().UTC()).Error
	})
}
