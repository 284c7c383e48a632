package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/vigilhq/vigil/pkg/dmarc"
)

// batchRows rows go into one INSERT. On PostgreSQL 13 columns × 1000 stays far below its
// 65,535 bind parameters while making round trips rare. SQLite has no round trips to save, and
// the pure-Go driver matches arguments to placeholders in quadratic time, so its batches stay
// small.
func (s *Store) batchRows() int {
	if s.dialect == Postgres {
		return 1000
	}
	return 32
}

// Saved says what happened to one report handed to SaveReport.
type Saved struct {
	ReportID int64
	// Duplicate: a report with the same identity came earlier from another file.
	Duplicate bool
}

// FileTx is the transaction in which one file's reports are stored and its outcome recorded:
// one commit per file, and a crash at any point leaves the file pending with nothing of it
// stored, so the next attempt starts clean.
type FileTx struct {
	s        *Store
	tx       *gorm.DB
	ctx      context.Context
	ingestID int64
	seq      int
}

// ErrAlreadyFinished means another attempt recorded the file's outcome first (a task delivered
// twice); this attempt's work is rolled back.
var ErrAlreadyFinished = errors.New("ingest already finished by another attempt")

// ProcessFile runs fn in one transaction for the file. On PostgreSQL the commit is
// asynchronous (synchronous_commit off): the original is already durable, so losing the last
// moments of processing in a database crash only returns the file to pending (the transaction
// is lost whole, never in part) and the sweep parses it again. This removes a WAL flush per file.
func (s *Store) ProcessFile(ctx context.Context, ingestID int64, fn func(ft *FileTx) error) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		if s.dialect == Postgres {
			if err := tx.Exec("SET LOCAL synchronous_commit = off").Error; err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		return fn(&FileTx{s: s, tx: tx, ctx: ctx, ingestID: ingestID})
	})
}

// SaveReport stores one report and its records. next streams the records (io.EOF ends them) so
// a report of millions of rows never sits in memory whole; an error from next rolls back this
// report only (a savepoint), leaving nothing of it and keeping the file's other reports.
// warnings is read after the last record, when a streaming parser knows them all.
//
// Report identity is (reporter org, report_id, policy domain, begin, end): when it already
// exists, the file is linked to the existing report and Duplicate says whether that report came
// from another file (a re-run of the same file's task is not a duplicate of itself). A
// duplicate's records are still read to the end, so a broken copy fails as a broken file.
func (ft *FileTx) SaveReport(h *dmarc.Report, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	ft.seq++
	sp := fmt.Sprintf("report_%d", ft.seq)
	if err := ft.tx.SavePoint(sp).Error; err != nil {
		return Saved{}, fmt.Errorf("store: savepoint: %w", err)
	}
	out, err := ft.s.saveReport(ft.ctx, ft.tx, ft.ingestID, h, next, warnings)
	if err != nil {
		if rerr := ft.tx.RollbackTo(sp).Error; rerr != nil {
			return Saved{}, fmt.Errorf("store: rollback to savepoint: %w (after %w)", rerr, err)
		}
		return Saved{}, fmt.Errorf("store: save report %q from %s: %w", h.ReportID, h.OrgName, err)
	}
	return out, nil
}

// Finish records the file's outcome, unless another attempt already did.
func (ft *FileTx) Finish(status, reason string, reportCount int) error {
	now := time.Now().UTC()
	res := ft.tx.Model(&Ingest{}).Where("id = ? AND status = ?", ft.ingestID, StatusPending).
		Updates(map[string]any{"status": status, "error": reason, "report_count": reportCount, "updated_at": now, "processed_at": now})
	if res.Error != nil {
		return fmt.Errorf("store: finish ingest %d: %w", ft.ingestID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("ingest %d: %w", ft.ingestID, ErrAlreadyFinished)
	}
	return nil
}

// SaveReport stores one report in a transaction of its own (tools and tests; the pipeline
// uses ProcessFile).
func (s *Store) SaveReport(ctx context.Context, ingestID int64, h *dmarc.Report, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	var out Saved
	err := s.write(ctx, func(tx *gorm.DB) error {
		var err error
		out, err = s.saveReport(ctx, tx, ingestID, h, next, warnings)
		return err
	})
	if err != nil {
		return Saved{}, fmt.Errorf("store: save report %q from %s: %w", h.ReportID, h.OrgName, err)
	}
	return out, nil
}

func (s *Store) saveReport(ctx context.Context, tx *gorm.DB, ingestID int64, h *dmarc.Report, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	rep := reportRow(ingestID, h)
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rep)
	if res.Error != nil {
		return Saved{}, fmt.Errorf("insert report: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		var existing Report
		err := tx.Select("id", "ingest_id").Where("org_key = ? AND report_id = ? AND domain = ? AND date_begin = ? AND date_end = ?",
			rep.OrgKey, rep.ReportID, rep.Domain, rep.DateBegin, rep.DateEnd).Take(&existing).Error
		if err != nil {
			return Saved{}, fmt.Errorf("find existing report: %w", err)
		}
		out := Saved{ReportID: existing.ID, Duplicate: existing.IngestID != ingestID}
		if err := drain(next); err != nil {
			return Saved{}, err
		}
		return out, link(tx, ingestID, out)
	}
	out := Saved{ReportID: rep.ID}
	n, msgs, err := s.insertRecords(ctx, tx, rep.ID, next)
	if err != nil {
		return Saved{}, err
	}
	if err := tx.Model(&Report{}).Where("id = ?", rep.ID).Updates(map[string]any{
		"record_count": n, "message_count": msgs, "warnings": jsonStrings(append(h.Warnings, warnings()...)),
	}).Error; err != nil {
		return Saved{}, fmt.Errorf("update report totals: %w", err)
	}
	return out, link(tx, ingestID, out)
}

func drain(next func() (dmarc.Record, error)) error {
	for {
		if _, err := next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func link(tx *gorm.DB, ingestID int64, s Saved) error {
	err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&IngestReport{IngestID: ingestID, ReportID: s.ReportID, Duplicate: s.Duplicate}).Error
	if err != nil {
		return fmt.Errorf("link report to ingest: %w", err)
	}
	return nil
}

func reportRow(ingestID int64, h *dmarc.Report) Report {
	p := h.Policy
	return Report{
		IngestID: ingestID, OrgName: h.OrgName, OrgKey: strings.ToLower(strings.TrimSpace(h.OrgName)),
		Email: h.Email, ExtraContactInfo: h.ExtraContactInfo, ReportID: h.ReportID, Domain: p.Domain,
		DateBegin: h.DateBegin.UTC(), DateEnd: h.DateEnd.UTC(), Version: h.Version, Namespace: h.Namespace,
		Generator: h.Generator, Errors: jsonStrings(h.Errors),
		PolicyP: p.P, PolicySP: p.SP, PolicyNP: p.NP, PolicyADKIM: p.ADKIM, PolicyASPF: p.ASPF, PolicyPct: p.Pct,
		PolicyFO: p.FO, PolicyTesting: p.Testing, PolicyDiscoveryMethod: p.DiscoveryMethod,
		Warnings: jsonStrings(h.Warnings), CreatedAt: time.Now().UTC(),
	}
}

const recordCols = 13

// insertRecords streams records into multi-row INSERTs through the transaction's connection,
// bypassing gorm's reflection: at 100k+ records/s it is the hot path of ingestion.
func (s *Store) insertRecords(ctx context.Context, tx *gorm.DB, reportID int64, next func() (dmarc.Record, error)) (n int, msgs int64, err error) {
	batch := s.batchRows()
	args := make([]any, 0, batch*recordCols)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		_, err := tx.Statement.ConnPool.ExecContext(ctx, s.insertSQL(rows), args...)
		args, rows = args[:0], 0
		if err != nil {
			return fmt.Errorf("insert records: %w", err)
		}
		return nil
	}
	var buf []byte
	for {
		r, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if r.Count > 0 && msgs > (1<<63-1)-r.Count {
			return 0, 0, fmt.Errorf("message total of report overflows 64 bits")
		}
		msgs += r.Count
		n++
		// Canonical whatever the caller hands over: an IPv4-mapped address is the IPv4 one.
		addr := r.SourceIP.Unmap().WithZone("")
		ip := addr.As16()
		buf = appendReasons(buf[:0], r.Reasons)
		reasons := string(buf)
		buf = appendDKIM(buf[:0], r.DKIMResults)
		dkimRes := string(buf)
		buf = appendSPF(buf[:0], r.SPFResults)
		args = append(args, reportID, addr.String(), ip[:], r.Count, r.Disposition, r.DKIM, r.SPF,
			r.HeaderFrom, r.EnvelopeFrom, r.EnvelopeTo, reasons, dkimRes, string(buf))
		if rows++; rows == batch {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	return n, msgs, flush()
}

// insertSQL builds (and caches for the common full batch) the INSERT text.
func (s *Store) insertSQL(rows int) string {
	if rows == s.batchRows() {
		s.batchSQLOnce.Do(func() { s.batchSQL = s.buildInsertSQL(rows) })
		return s.batchSQL
	}
	return s.buildInsertSQL(rows)
}

func (s *Store) buildInsertSQL(rows int) string {
	var b strings.Builder
	b.Grow(160 + rows*recordCols*7)
	b.WriteString("INSERT INTO records (report_id, source_ip, ip, count, disposition, dkim, spf, header_from, envelope_from, envelope_to, reasons, dkim_results, spf_results) VALUES ")
	p := 1
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < recordCols; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			if s.dialect == Postgres {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(p))
				p++
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}
