package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/vigilhq/vigil/pkg/dmarc"
)

// batchRows rows go into one INSERT. On PostgreSQL 13 columns × 1000 stays far below its
// 65,535 bind parameters while making round trips rare. SQLite has no round trips to save: a
// full batch's text is prepared once per connection (ExecRepeated) and only a batch's tail is
// parsed afresh, so a small batch keeps that tail cheap. (The size dates from the earlier
// driver, whose binding was quadratic in the arguments; not re-tuned since.)
func (s *Store) batchRows() int {
	if s.dialect == Postgres {
		return 1000
	}
	return 32
}

// Saved says what happened to one report.
type Saved struct {
	ReportID int64
	// Duplicate: a report with the same identity came earlier from another file.
	Duplicate bool
	// Inserted: this call stored the report, so the stored row and records are what the call
	// was handed (not a report stored before, by this file or another, and linked).
	Inserted bool
}

// NewReport is a report a file stored for the first time, as the after-store hook sees it:
// the header and records the call that inserted it was handed (Saved.Inserted).
type NewReport struct {
	ID      int64
	Header  *dmarc.Report
	Records []dmarc.Record
}

// orgKey is the reports.org_key of a reporter's name: reporters are told apart by it.
func orgKey(orgName string) string { return strings.ToLower(strings.TrimSpace(orgName)) }

// RecordIP is the records.ip of a source address: 16 bytes, an IPv4-mapped address as the
// IPv4 one, no zone.
func RecordIP(a netip.Addr) [16]byte { return a.Unmap().WithZone("").As16() }

// Parsed is a complete report read into memory, ready to store.
type Parsed struct {
	Header   *dmarc.Report
	Records  []dmarc.Record
	Warnings []string // found while reading the records
}

// Report identity is (reporter org, report_id, policy domain, begin, end). Storing a report
// whose identity exists links the file to the existing report instead; Duplicate says whether
// that report came from another file (a re-run of the same file's task is not a duplicate of
// itself), so every save below is idempotent.

// Outcome is a file's final state.
type Outcome struct {
	Status      string
	Reason      string
	ReportCount int
}

// SaveParsed stores complete reports of one file and links them to it. Each call is atomic
// (on PostgreSQL a single statement, committed asynchronously: the original is durable
// already, and a save lost in a crash leaves the file pending for the sweep).
func (s *Store) SaveParsed(ctx context.Context, ingestID int64, reps []Parsed) ([]Saved, error) {
	if len(reps) == 0 {
		return nil, nil
	}
	saved, _, err := s.SaveFiles(ctx, []FileReports{{IngestID: ingestID, Reports: reps}})
	if err != nil {
		return nil, err
	}
	return saved[0], nil
}

// SaveParsedAndFinish is SaveParsed for a file's last reports that also records the file's
// outcome in the same statement, provided every report in the call is new (the usual case).
// finished is false otherwise (a report was already stored), and the caller records the outcome
// with Finish once it knows it.
func (s *Store) SaveParsedAndFinish(ctx context.Context, ingestID int64, reps []Parsed, out Outcome) (saved []Saved, finished bool, err error) {
	if len(reps) == 0 {
		return nil, false, nil
	}
	all, done, err := s.SaveFiles(ctx, []FileReports{{IngestID: ingestID, Reports: reps, Outcome: &out}})
	if err != nil {
		return nil, false, err
	}
	return all[0], done[0], nil
}

// FileReports is what SaveFiles stores for one file: complete reports, and the file's outcome
// should they all be new (nil: leave the file pending, more is to come).
type FileReports struct {
	IngestID int64
	Reports  []Parsed
	Outcome  *Outcome
}

// SaveFiles stores the complete reports of several files, links each to its file and finishes
// each file that has an Outcome and whose reports all turned out new (finished[i]); a file
// with no reports and an Outcome is simply finished. The call is atomic: on PostgreSQL one
// statement with a fixed text (see saveFilesSQL), committed asynchronously like SaveParsed; on
// SQLite one transaction. A file not finished here (a report was already stored) is finished
// by the caller with Finish once it knows the real outcome. One statement for a batch of small
// files instead of one per file is what lets `api import` keep up with thousands a second.
func (s *Store) SaveFiles(ctx context.Context, files []FileReports) (saved [][]Saved, finished []bool, err error) {
	if len(files) == 0 {
		return nil, nil, nil
	}
	rows := make([][]Report, len(files))
	for i, f := range files {
		rows[i] = make([]Report, len(f.Reports))
		for j, p := range f.Reports {
			if rows[i][j], err = completeRow(f.IngestID, p); err != nil {
				return nil, nil, fmt.Errorf("store: report of ingest %d: %w", f.IngestID, err)
			}
		}
	}
	if s.dialect == Postgres {
		saved, finished, err = s.saveFilesPG(ctx, files, rows)
	} else {
		saved, finished, err = s.saveFilesSQLite(ctx, files, rows)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: save reports of ingest %d and %d more: %w", files[0].IngestID, len(files)-1, err)
	}
	return saved, finished, nil
}

// completeRow is the report row of a complete report, totals included.
func completeRow(ingestID int64, p Parsed) (Report, error) {
	r := ReportRow(ingestID, p.Header)
	var err error
	if r.MessageCount, err = messageTotal(0, p.Records); err != nil {
		return Report{}, err
	}
	r.RecordCount = len(p.Records)
	r.Warnings = jsonStrings(append(p.Header.Warnings, p.Warnings...))
	return r, nil
}

// SaveReport stores one report in a transaction of its own, streaming its records: head
// first, then next until io.EOF, in batches, so a report of millions of rows never sits in
// memory whole. An error from next rolls the report back whole. warnings is read after the last
// record, when a streaming parser knows them all. A duplicate's records are still read to the
// end, so a copy broken further down fails as a broken file.
func (s *Store) SaveReport(ctx context.Context, ingestID int64, h *dmarc.Report, head []dmarc.Record, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	var out Saved
	var err error
	if s.dialect == Postgres {
		out, err = s.saveReportPG(ctx, ingestID, h, head, next, warnings)
	} else {
		err = s.saveReportTx(ctx, ingestID, h, head, next, warnings, &out)
	}
	if err != nil {
		return Saved{}, fmt.Errorf("store: save report %q from %s: %w", h.ReportID, h.OrgName, err)
	}
	return out, nil
}

// saveReportTx is SaveReport through gorm, records in multi-row INSERT batches (SQLite).
func (s *Store) saveReportTx(ctx context.Context, ingestID int64, h *dmarc.Report, head []dmarc.Record, next func() (dmarc.Record, error), warnings func() []string, out *Saved) error {
	return s.writeAsync(ctx, func(tx *gorm.DB) error {
		rep := ReportRow(ingestID, h)
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rep)
		if res.Error != nil {
			return fmt.Errorf("insert report: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			if err := drain(next); err != nil {
				return err
			}
			var err error
			*out, err = linkExisting(tx, rep)
			return err
		}
		n, msgs, err := s.insertRecords(ctx, tx, rep.ID, head, false, next)
		if err != nil {
			return err
		}
		if err := tx.Model(&Report{}).Where("id = ?", rep.ID).Updates(map[string]any{
			"record_count": n, "message_count": msgs, "warnings": jsonStrings(append(h.Warnings, warnings()...)),
		}).Error; err != nil {
			return fmt.Errorf("update report totals: %w", err)
		}
		*out = Saved{ReportID: rep.ID, Inserted: true}
		return link(tx, ingestID, *out)
	})
}

func messageTotal(sum int64, recs []dmarc.Record) (int64, error) {
	for _, r := range recs {
		if r.Count > 0 && sum > (1<<63-1)-r.Count {
			return 0, fmt.Errorf("message total of report overflows 64 bits")
		}
		sum += r.Count
	}
	return sum, nil
}

// linkExisting links the file to the report that already has rep's identity.
func linkExisting(db *gorm.DB, rep Report) (Saved, error) {
	var existing Report
	err := db.Select("id", "ingest_id").Where("org_key = ? AND report_id = ? AND domain = ? AND date_begin = ? AND date_end = ?",
		rep.OrgKey, rep.ReportID, rep.Domain, rep.DateBegin, rep.DateEnd).Take(&existing).Error
	if err != nil {
		return Saved{}, fmt.Errorf("find existing report: %w", err)
	}
	out := Saved{ReportID: existing.ID, Duplicate: existing.IngestID != rep.IngestID}
	return out, link(db, rep.IngestID, out)
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

func link(db *gorm.DB, ingestID int64, s Saved) error {
	err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&IngestReport{IngestID: ingestID, ReportID: s.ReportID, Duplicate: s.Duplicate}).Error
	if err != nil {
		return fmt.Errorf("link report to ingest: %w", err)
	}
	return nil
}

// ReportRow is the reports row stored for a report's header (totals and warnings of its
// records aside): what the rollups read of a stored report, whether from the database or, for
// reports the process just inserted, from the header itself.
func ReportRow(ingestID int64, h *dmarc.Report) Report {
	p := h.Policy
	return Report{
		IngestID: ingestID, OrgName: h.OrgName, OrgKey: orgKey(h.OrgName),
		Email: h.Email, ExtraContactInfo: h.ExtraContactInfo, ReportID: h.ReportID, Domain: p.Domain,
		DateBegin: h.DateBegin.UTC(), DateEnd: h.DateEnd.UTC(), Version: h.Version, Namespace: h.Namespace,
		Generator: h.Generator, Errors: jsonStrings(h.Errors),
		PolicyP: p.P, PolicySP: p.SP, PolicyNP: p.NP, PolicyADKIM: p.ADKIM, PolicyASPF: p.ASPF, PolicyPct: p.Pct,
		PolicyFO: p.FO, PolicyTesting: p.Testing, PolicyDiscoveryMethod: p.DiscoveryMethod,
		Warnings: jsonStrings(h.Warnings), CreatedAt: time.Now().UTC(),
	}
}

const recordCols = 13

// appendRecord appends a record's column values (after report_id) in insert order.
func appendRecord(args []any, r dmarc.Record, buf *[]byte) []any {
	// Canonical whatever the caller hands over: an IPv4-mapped address is the IPv4 one.
	addr := r.SourceIP.Unmap().WithZone("")
	ip := RecordIP(addr)
	*buf = appendReasons((*buf)[:0], r.Reasons)
	reasons := string(*buf)
	*buf = appendDKIM((*buf)[:0], r.DKIMResults)
	dkimRes := string(*buf)
	*buf = appendSPF((*buf)[:0], r.SPFResults)
	return append(args, addr.String(), ip[:], r.Count, r.Disposition, r.DKIM, r.SPF,
		r.HeaderFrom, r.EnvelopeFrom, r.EnvelopeTo, reasons, dkimRes, string(*buf))
}

// recordWriter writes records in multi-row INSERTs through a transaction's connection,
// bypassing gorm's reflection: at 100k+ records/s it is the hot path of ingestion. Full batches
// run one prepared text (ExecRepeated); rows of several reports may share a batch.
type recordWriter struct {
	s    *Store
	ctx  context.Context
	tx   *gorm.DB
	n    int // rows per full batch
	args []any
	rows int
	buf  []byte
}

func (s *Store) newRecordWriter(ctx context.Context, tx *gorm.DB) *recordWriter {
	n := s.batchRows()
	return &recordWriter{s: s, ctx: ctx, tx: tx, n: n, args: make([]any, 0, n*(recordCols+1))}
}

func (w *recordWriter) add(reportID int64, r dmarc.Record) error {
	w.args = appendRecord(append(w.args, reportID), r, &w.buf)
	if w.rows++; w.rows == w.n {
		return w.flush()
	}
	return nil
}

func (w *recordWriter) flush() error {
	if w.rows == 0 {
		return nil
	}
	var err error
	if w.rows == w.n {
		err = w.s.ExecRepeated(w.ctx, w.tx, w.s.insertSQL(w.rows), w.args...)
	} else {
		_, err = w.tx.Statement.ConnPool.ExecContext(w.ctx, w.s.insertSQL(w.rows), w.args...)
	}
	w.args, w.rows = w.args[:0], 0
	if err != nil {
		return fmt.Errorf("insert records: %w", err)
	}
	return nil
}

// insertRecords writes head, then (unless complete) streams the rest from next.
func (s *Store) insertRecords(ctx context.Context, tx *gorm.DB, reportID int64, head []dmarc.Record, complete bool, next func() (dmarc.Record, error)) (n int, msgs int64, err error) {
	w := s.newRecordWriter(ctx, tx)
	add := func(r dmarc.Record) error {
		if r.Count > 0 && msgs > (1<<63-1)-r.Count {
			return fmt.Errorf("message total of report overflows 64 bits")
		}
		msgs += r.Count
		n++
		return w.add(reportID, r)
	}
	for _, r := range head {
		if err := add(r); err != nil {
			return 0, 0, err
		}
	}
	for !complete {
		r, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if err := add(r); err != nil {
			return 0, 0, err
		}
	}
	return n, msgs, w.flush()
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
