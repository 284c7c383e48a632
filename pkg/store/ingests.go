package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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

// CreateIngest is CreateIngests for one file: the same bytes twice are one file, whoever wins
// a concurrent race (Created is false and ID is the first file's).
func (s *Store) CreateIngest(ctx context.Context, f NewFile) (Stored, error) {
	out, err := s.CreateIngests(ctx, []NewFile{f})
	if err != nil {
		return Stored{}, err
	}
	return out[0], nil
}

// Stored says what CreateIngests did with one file: ID is its ingest, new or (Created false)
// the earlier one with the same bytes.
type Stored struct {
	ID      int64
	Created bool
}

// CreateIngests is CreateIngest for several files with one durable commit: on PostgreSQL one
// statement, on SQLite one transaction. A commit waits for the WAL to reach the disk, so one
// for a batch instead of one per file is most of what a batch saves. The same bytes twice in
// files, or already stored, give the first file's ingest, as CreateIngest does.
func (s *Store) CreateIngests(ctx context.Context, files []NewFile) ([]Stored, error) {
	out := make([]Stored, len(files))
	var err error
	if s.dialect == Postgres {
		err = s.createIngestsPG(ctx, files, out)
	} else {
		err = s.write(ctx, func(tx *gorm.DB) error { return s.createIngestsSQLite(ctx, tx, files, out) })
	}
	if err != nil {
		return nil, fmt.Errorf("store: create %d ingests: %w", len(files), err)
	}
	return out, nil
}

// createIngestsSQLite is CreateIngests' transaction on SQLite, in plain statements (gorm's
// Create reflected over every row for most of the cost).
func (s *Store) createIngestsSQLite(ctx context.Context, tx *gorm.DB, files []NewFile, out []Stored) error {
	now := time.Now().UTC()
	for i, f := range files {
		err := s.scanRepeated(ctx, tx, `INSERT INTO ingests (sha256, filename, source, source_ref, size_bytes, status,
			error, report_count, attempts, received_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, '', 0, 0, ?, ?, ?)
			ON CONFLICT (sha256) DO NOTHING RETURNING id`,
			[]any{f.SHA256, f.Filename, f.Source, f.SourceRef, f.Size, StatusPending, f.ReceivedAt.UTC(), now, now}, &out[i].ID)
		switch {
		case errors.Is(err, sql.ErrNoRows): // stored before, or earlier in this batch
			if err := s.scanRepeated(ctx, tx, `SELECT id FROM ingests WHERE sha256 = ?`, []any{f.SHA256}, &out[i].ID); err != nil {
				return fmt.Errorf("find ingest by sha256: %w", err)
			}
			continue
		case err != nil:
			return err
		}
		out[i].Created = true
		if err := s.ExecRepeated(ctx, tx, `INSERT INTO raw_files (ingest_id, encoding, data) VALUES (?, ?, ?)`, out[i].ID, f.Encoding, f.Data); err != nil {
			return err
		}
	}
	return nil
}

// createIngestsSQL inserts every file not stored yet, with its original, and returns the ones it
// inserted. Files go in by SHA-256 order: two batches racing on the same files then wait for
// each other instead of deadlocking.
const createIngestsSQL = `WITH inp AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::timestamptz[], $7::text[], $8::bytea[])
	AS t(sha256, filename, source, source_ref, size_bytes, received_at, encoding, data)
), ing AS (
	INSERT INTO ingests (sha256, filename, source, source_ref, size_bytes, status, received_at, created_at, updated_at)
	SELECT sha256, filename, source, source_ref, size_bytes, 'pending', received_at, $9, $9 FROM inp ORDER BY sha256
	ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256
), raw AS (
	INSERT INTO raw_files (ingest_id, encoding, data) SELECT ing.id, inp.encoding, inp.data FROM ing JOIN inp ON inp.sha256 = ing.sha256
)
SELECT id, sha256 FROM ing`

func (s *Store) createIngestsPG(ctx context.Context, files []NewFile, out []Stored) error {
	first := make(map[string]int, len(files)) // sha256 → first file with it
	var sums, names, sources, refs, encs []string
	var sizes []int64
	var received []time.Time
	var data [][]byte
	for i, f := range files {
		if _, ok := first[f.SHA256]; ok {
			continue
		}
		first[f.SHA256] = i
		sums, names, sources, refs = append(sums, f.SHA256), append(names, f.Filename), append(sources, f.Source), append(refs, f.SourceRef)
		sizes, received, encs, data = append(sizes, f.Size), append(received, f.ReceivedAt.UTC()), append(encs, f.Encoding), append(data, f.Data)
	}
	db := s.db.WithContext(ctx) // the durable pool: the original must survive a crash
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	rows, err := sqlDB.QueryContext(ctx, createIngestsSQL, sums, names, sources, refs, sizes, received, encs, data, time.Now().UTC())
	if err != nil {
		return err
	}
	ids := make(map[string]int64, len(sums))
	for rows.Next() {
		var id int64
		var sum string
		if err := rows.Scan(&id, &sum); err != nil {
			rows.Close()
			return err
		}
		ids[sum] = id
		out[first[sum]].Created = true
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if len(ids) < len(sums) {
		// Stored before (or by a concurrent batch, which ON CONFLICT waited for): find them.
		var known []Ingest
		if err := db.Select("id", "sha256").Where("sha256 IN ?", sums).Find(&known).Error; err != nil {
			return fmt.Errorf("find ingests by sha256: %w", err)
		}
		for _, k := range known {
			ids[k.SHA256] = k.ID
		}
	}
	for i, f := range files {
		if out[i].ID = ids[f.SHA256]; out[i].ID == 0 {
			return fmt.Errorf("ingest with sha256 %s neither created nor found", f.SHA256)
		}
	}
	return nil
}

// Claimed is a file claimed for a parse attempt, with its original.
type Claimed struct {
	// ID, Filename, SizeBytes, Attempts (this one included) and Error (of the last attempt
	// that failed on something other than the file) are set.
	Ingest Ingest
	Raw    RawFile
}

// ClaimMany is Claim for several files in one statement; files not pending are left out.
func (s *Store) ClaimMany(ctx context.Context, ids []int64) ([]Claimed, error) {
	if s.dialect != Postgres {
		var out []Claimed
		for start := 0; start < len(ids); start += claimChunk {
			part, err := s.claimSQLite(ctx, ids[start:min(start+claimChunk, len(ids))])
			if err != nil {
				return nil, fmt.Errorf("store: claim %d ingests: %w", len(ids), err)
			}
			out = append(out, part...)
		}
		return out, nil
	}
	ids = slices.Sorted(slices.Values(ids)) // lock rows in one order, like every other batch
	rows, err := s.rawDB(ctx).QueryContext(ctx, `WITH upd AS (UPDATE ingests SET attempts = attempts + 1, updated_at = $2
		WHERE id = ANY($1) AND status = 'pending' RETURNING id, filename, size_bytes, attempts, error)
		SELECT upd.id, upd.filename, upd.size_bytes, upd.attempts, upd.error, r.encoding, r.data FROM upd JOIN raw_files r ON r.ingest_id = upd.id`, ids, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("store: claim %d ingests: %w", len(ids), err)
	}
	defer rows.Close()
	out := make([]Claimed, 0, len(ids))
	for rows.Next() {
		var c Claimed
		if err := rows.Scan(&c.Ingest.ID, &c.Ingest.Filename, &c.Ingest.SizeBytes, &c.Ingest.Attempts, &c.Ingest.Error, &c.Raw.Encoding, &c.Raw.Data); err != nil {
			return nil, fmt.Errorf("store: claim %d ingests: %w", len(ids), err)
		}
		c.Raw.IngestID = c.Ingest.ID
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim %d ingests: %w", len(ids), err)
	}
	return out, nil
}

// claimChunk bounds the ids of one SQLite claim statement (its parameters).
const claimChunk = 500

// claimSQLite is ClaimMany's statement pair on SQLite: one UPDATE … RETURNING takes the
// pending files (under the write lock), one SELECT reads their originals. Statement by
// statement per file, the claim was a sixth of an import's CPU on SQLite.
func (s *Store) claimSQLite(ctx context.Context, ids []int64) ([]Claimed, error) {
	var out []Claimed
	err := s.writeStmt(ctx, func(db *gorm.DB) error {
		rows, err := db.Raw(`UPDATE ingests SET attempts = attempts + 1, updated_at = ?
			WHERE id IN ? AND status = ? RETURNING id, filename, size_bytes, attempts, error`, time.Now().UTC(), ids, StatusPending).Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c Claimed
			if err := rows.Scan(&c.Ingest.ID, &c.Ingest.Filename, &c.Ingest.SizeBytes, &c.Ingest.Attempts, &c.Ingest.Error); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	claimed := make([]int64, len(out))
	for i, c := range out {
		claimed[i] = c.Ingest.ID
	}
	var raws []RawFile
	if err := s.db.WithContext(ctx).Where("ingest_id IN ?", claimed).Find(&raws).Error; err != nil {
		return nil, err
	}
	byID := make(map[int64]RawFile, len(raws))
	for _, r := range raws {
		byID[r.IngestID] = r
	}
	// As the join on PostgreSQL: a file without its original (never the case: both are
	// written in one transaction) is not returned.
	kept := out[:0]
	for _, c := range out {
		if r, ok := byID[c.Ingest.ID]; ok {
			c.Raw = r
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// NoteAttemptError keeps on a file that stays pending why its last attempt did not finish
// (the database refused its reports, or was unreachable half-way), so that people see it and
// a file given up on later says why.
func (s *Store) NoteAttemptError(ctx context.Context, id int64, reason string) error {
	return s.writeStmt(ctx, func(db *gorm.DB) error {
		return db.Model(&Ingest{}).Where("id = ? AND status = ?", id, StatusPending).Update("error", reason).Error
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
			WHERE id = $1 AND status = 'pending' RETURNING id, filename, size_bytes, attempts, error)
			SELECT upd.id, upd.filename, upd.size_bytes, upd.attempts, upd.error, r.encoding, r.data FROM upd JOIN raw_files r ON r.ingest_id = upd.id`, id, now)
		err = row.Scan(&ing.ID, &ing.Filename, &ing.SizeBytes, &ing.Attempts, &ing.Error, &raw.Encoding, &raw.Data)
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
	const q = `UPDATE ingests SET status = ?, error = ?, report_count = ?, updated_at = ?, processed_at = ?
		WHERE id = ? AND status = 'pending'`
	args := []any{o.Status, o.Reason, o.ReportCount, now, now, id}
	if s.stmts == nil { // PostgreSQL: gorm binds the placeholders; pgx caches the statement
		res := db.Exec(q, args...)
		return res.RowsAffected == 1, res.Error
	}
	res, err := s.execRepeated(ctx, db, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ResetIngest puts a file back to pending so it is parsed again (after a parser fix), with
// its attempts counted from zero again.
func (s *Store) ResetIngest(ctx context.Context, id int64) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		return tx.Model(&Ingest{}).Where("id = ?", id).
			Updates(resetColumns()).Error
	})
}

// resetColumns is what putting a file back to pending writes: a fresh start, attempts included.
func resetColumns() map[string]any {
	return map[string]any{"status": StatusPending, "error": "", "attempts": 0, "updated_at": time.Now().UTC(), "processed_at": nil}
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

// ResetFailed puts up to limit files that failed before before back to pending, as
// ResetIngest does, and returns them. Their updated_at becomes now, so repeated calls with
// the same before move on to the next ones.
func (s *Store) ResetFailed(ctx context.Context, before time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		ids = ids[:0]
		if err := tx.Model(&Ingest{}).Where("status = ? AND updated_at < ?", StatusFailed, before.UTC()).
			Order("id").Limit(limit).Pluck("id", &ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		return tx.Model(&Ingest{}).Where("id IN ? AND status = ?", ids, StatusFailed).
			Updates(resetColumns()).Error
	})
	if err != nil {
		return nil, fmt.Errorf("store: reset failed files: %w", err)
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
