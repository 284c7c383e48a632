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

// recordBatch rows go into one INSERT: 13 columns × 1000 stays far below PostgreSQL's 65,535
// bind parameters while making round trips rare.
const recordBatch = 1000

// Saved says what happened to one report handed to SaveReport.
type Saved struct {
	ReportID int64
	// Duplicate: a report with the same identity came earlier from another file.
	Duplicate bool
}

// SaveReport stores a report and its records in one transaction. next streams the records
// (io.EOF ends them) so a report of millions of rows never sits in memory whole; any error from
// next rolls everything back, leaving nothing half-stored. warnings is read after the last
// record, when a streaming parser knows them all.
//
// Report identity is (reporter org, report_id, policy domain, begin, end): when it already
// exists, the file is linked to the existing report and Duplicate says whether that report came
// from another file (a re-run of the same file's task is not a duplicate of itself). A
// duplicate's records are still read to the end, so a broken copy fails as a broken file.
func (s *Store) SaveReport(ctx context.Context, ingestID int64, h *dmarc.Report, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	var out Saved
	err := s.write(ctx, func(tx *gorm.DB) error {
		rep := reportRow(ingestID, h)
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rep)
		if res.Error != nil {
			return fmt.Errorf("insert report: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			var existing Report
			err := tx.Select("id", "ingest_id").Where("org_key = ? AND report_id = ? AND domain = ? AND date_begin = ? AND date_end = ?",
				rep.OrgKey, rep.ReportID, rep.Domain, rep.DateBegin, rep.DateEnd).Take(&existing).Error
			if err != nil {
				return fmt.Errorf("find existing report: %w", err)
			}
			out = Saved{ReportID: existing.ID, Duplicate: existing.IngestID != ingestID}
			// Read the rest anyway: a copy that turns out broken further down is a bad file,
			// not a duplicate of a good one.
			if err := drain(next); err != nil {
				return err
			}
			return link(tx, ingestID, out)
		}
		out = Saved{ReportID: rep.ID}
		n, msgs, err := s.insertRecords(ctx, tx, rep.ID, next)
		if err != nil {
			return err
		}
		if err := tx.Model(&Report{}).Where("id = ?", rep.ID).Updates(map[string]any{
			"record_count": n, "message_count": msgs, "warnings": jsonStrings(append(h.Warnings, warnings()...)),
		}).Error; err != nil {
			return fmt.Errorf("update report totals: %w", err)
		}
		return link(tx, ingestID, out)
	})
	if err != nil {
		return Saved{}, fmt.Errorf("store: save report %q from %s: %w", h.ReportID, h.OrgName, err)
	}
	return out, nil
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
	args := make([]any, 0, recordBatch*recordCols)
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
		if rows++; rows == recordBatch {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	return n, msgs, flush()
}

// insertSQL builds (and caches per row count for the common full batch) the INSERT text.
func (s *Store) insertSQL(rows int) string {
	if rows == recordBatch {
		s.batchSQLOnce.Do(func() { s.batchSQL = s.buildInsertSQL(recordBatch) })
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
