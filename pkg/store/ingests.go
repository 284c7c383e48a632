package store

import (
	"context"
	"database/sql"
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
	if s.dialect == Postgres {
		err = s.createIngestPG(ctx, &ing, f)
		created = err == nil && ing.ID != 0
	} else {
		err = s.createIngest(ctx, &ing, f, &created)
	}
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

// createIngestPG writes the file and its original in one durable statement; ing.ID stays 0
// when the same bytes were stored before.
func (s *Store) createIngestPG(ctx context.Context, ing *Ingest, f NewFile) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	err = sqlDB.QueryRowContext(ctx, `WITH ing AS (INSERT INTO ingests
		(sha256, filename, source, source_ref, size_bytes, status, received_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7) ON CONFLICT (sha256) DO NOTHING RETURNING id),
		raw AS (INSERT INTO raw_files (ingest_id, encoding, data) SELECT id, $8, $9 FROM ing)
		SELECT id FROM ing`, ing.SHA256, ing.Filename, ing.Source, ing.SourceRef, ing.SizeBytes, ing.ReceivedAt, ing.CreatedAt,
		f.Encoding, f.Data).Scan(&ing.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

func (s *Store) createIngest(ctx context.Context, ing *Ingest, f NewFile, created *bool) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "sha256"}}, DoNothing: true}).Create(ing)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		*created = true
		return tx.Create(&RawFile{IngestID: ing.ID, Encoding: f.Encoding, Data: f.Data}).Error
	})
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

// Claim starts a parse attempt on a pending file: it counts the attempt and returns the file
// with its original; ok is false when the file is not pending (already finished: nothing to
// do). The count shows people which files keep failing.
func (s *Store) Claim(ctx context.Context, id int64) (ing Ingest, raw RawFile, ok bool, err error) {
	now := time.Now().UTC()
	if s.dialect == Postgres {
		// One round trip: the update and the original's bytes together.
		row := s.rawDB(ctx).QueryRowContext(ctx, `WITH upd AS (UPDATE ingests SET attempts = attempts + 1, updated_at = $2
			WHERE id = $1 AND status = 'pending' RETURNING id, filename)
			SELECT upd.id, upd.filename, r.encoding, r.data FROM upd JOIN raw_files r ON r.ingest_id = upd.id`, id, now)
		err = row.Scan(&ing.ID, &ing.Filename, &raw.Encoding, &raw.Data)
		if err == nil {
			raw.IngestID = id
			return ing, raw, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Ingest{}, RawFile{}, false, fmt.Errorf("store: claim ingest %d: %w", id, err)
		}
	} else {
		err = s.writeStmt(ctx, func(db *gorm.DB) error {
			res := db.Model(&ing).Clauses(clause.Returning{}).Where("id = ? AND status = ?", id, StatusPending).
				Updates(map[string]any{"attempts": gorm.Expr("attempts + 1"), "updated_at": now})
			ok = res.RowsAffected == 1
			return res.Error
		})
		if err != nil {
			return Ingest{}, RawFile{}, false, fmt.Errorf("store: claim ingest %d: %w", id, err)
		}
		if ok {
			raw, err = s.RawFile(ctx, id)
			return ing, raw, err == nil, err
		}
	}
	ing, err = s.GetIngest(ctx, id)
	return ing, RawFile{}, false, err
}

// rawDB is the asynchronous pool's database/sql handle, for hand-written statements.
func (s *Store) rawDB(ctx context.Context) *sql.DB {
	db, _ := s.async.WithContext(ctx).DB() // a gorm.DB opened by Open always has one
	return db
}

// Finish records the outcome of parsing. Only a pending file changes, so a retried or
// duplicated task never overwrites a result; changed tells whether this call did it. The
// commit may be asynchronous: lost in a crash, the file is simply parsed again.
func (s *Store) Finish(ctx context.Context, id int64, status, reason string, reportCount int) (changed bool, err error) {
	err = s.writeStmt(ctx, func(db *gorm.DB) error {
		var err error
		changed, err = s.finish(ctx, s.async.WithContext(ctx), id, Outcome{Status: status, Reason: reason, ReportCount: reportCount})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: finish ingest %d: %w", id, err)
	}
	return changed, nil
}

// finish is hand-written: it runs once per file, and gorm's reflective Updates cost more than
// the statement itself.
func (s *Store) finish(ctx context.Context, db *gorm.DB, id int64, o Outcome) (bool, error) {
	now := time.Now().UTC()
	res := db.Exec(`UPDATE ingests SET status = ?, error = ?, report_count = ?, updated_at = ?, processed_at = ?
		WHERE id = ? AND status = 'pending'`, o.Status, o.Reason, o.ReportCount, now, now, id)
	return res.RowsAffected == 1, res.Error
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
