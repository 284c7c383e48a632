package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// Streams for the exports (pkg/export): every matching row handed to a callback one at a time,
// read from one cursor, so a million-row file never sits in memory. Filters and order are
// those of ListReports (newest report first) and ListRecords (storage order in a report).

// CountReports counts the reports matching f, as ListReports' total.
func (s *Store) CountReports(ctx context.Context, f Filter) (int64, error) {
	var n int64
	if err := s.applyReport(ctx, s.db.WithContext(ctx).Model(&Report{}), f).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("store: count reports: %w", err)
	}
	return n, nil
}

// EachReport calls fn for every report matching f, newest first; fn's error stops the walk.
// The Report passed is reused between calls.
func (s *Store) EachReport(ctx context.Context, f Filter, fn func(*Report) error) error {
	q := s.applyReport(ctx, s.db.WithContext(ctx).Model(&Report{}), f).Order("reports.date_begin DESC, reports.id DESC")
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("store: stream reports: %w", err)
	}
	defer rows.Close()
	var r Report
	for rows.Next() {
		r = Report{}
		if err := s.db.ScanRows(rows, &r); err != nil {
			return fmt.Errorf("store: scan report: %w", err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RecordRow is one row of a records export: a record and the report it belongs to. Byte
// fields hold the database's text and may alias the driver's buffers: they are valid only
// until the callback returns (copy what must outlive it).
type RecordRow struct {
	ReportID                          int64
	ReporterReportID, OrgName, Domain []byte // the reporter's report_id, org_name, domain
	DateBegin, DateEnd                time.Time
	ID                                int64
	SourceIP                          []byte
	Count                             int64
	Disposition, DKIM, SPF            []byte
	Reasons                           []byte // JSON, as stored
	HeaderFrom, EnvelopeFrom          []byte
	EnvelopeTo                        []byte
	DKIMResults, SPFResults           []byte // JSON, as stored
}

// recordsQuery selects the records of the reports matching f that match f's record filters.
func (s *Store) recordsQuery(ctx context.Context, f Filter) *gorm.DB {
	q := s.applyReport(ctx, s.db.WithContext(ctx).Table("reports"), Filter{Domain: f.Domain, OrgName: f.OrgName, Start: f.Start, End: f.End, Report: f.Report}).
		Joins("JOIN records AS rec ON rec.report_id = reports.id")
	return f.applyRecord(q, "rec")
}

// CountRecords counts the records a records export of f holds.
func (s *Store) CountRecords(ctx context.Context, f Filter) (int64, error) {
	var n int64
	if err := s.recordsQuery(ctx, f).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("store: count records: %w", err)
	}
	return n, nil
}

const (
	streamHeadCols   = "reports.id, reports.report_id, reports.org_name, reports.domain, reports.date_begin, reports.date_end"
	streamRecordCols = "rec.id, rec.source_ip, rec.count, rec.disposition, rec.dkim, rec.spf, rec.reasons, rec.header_from, " +
		"rec.envelope_from, rec.envelope_to, rec.dkim_results, rec.spf_results"
	streamHeadOrder = "reports.date_begin DESC, reports.id DESC"
)

// EachRecord calls fn for every record of the reports matching f that matches f's record
// filters: reports newest first (as ListReports), each report's records in storage order (as
// ListRecords). It is one query read as it arrives, so memory does not grow with the rows.
// The row passed is reused between calls.
//
// On PostgreSQL the query is a lateral join read with pgx directly: the reports come in order
// from reports_begin_idx (or reports_domain_begin_idx), each report's few records from
// records_report_idx, so nothing sorts a million records and the first row leaves at once; the
// text columns are handed over as the driver's bytes, with no value allocated per row. A plain
// join ordered by report and record makes PostgreSQL sort every record (to disk past work_mem)
// before the first row, and the earlier walk (a page of reports, then their records by id
// through gorm) spent most of an export waiting on its round trips.
func (s *Store) EachRecord(ctx context.Context, f Filter, fn func(*RecordRow) error) error {
	if s.dialect == Postgres {
		return s.eachRecordPG(ctx, f, fn)
	}
	return s.eachRecordSQLite(ctx, f, fn)
}

// dryRun renders a gorm query as SQL with its bind variables, without running it.
func dryRun(q *gorm.DB) (string, []any, error) {
	var dst []map[string]any
	st := q.Session(&gorm.Session{DryRun: true}).Find(&dst)
	if st.Error != nil {
		return "", nil, fmt.Errorf("store: build records query: %w", st.Error)
	}
	return st.Statement.SQL.String(), st.Statement.Vars, nil
}

func (s *Store) eachRecordPG(ctx context.Context, f Filter, fn func(*RecordRow) error) error {
	heads := s.applyReport(ctx, s.db.WithContext(ctx).Table("reports"), Filter{Domain: f.Domain, OrgName: f.OrgName, Start: f.Start, End: f.End, Report: f.Report}).
		Select(streamHeadCols).Order(streamHeadOrder)
	// ORDER BY inside the lateral subquery keeps PostgreSQL from flattening it into a join it
	// would then sort as a whole: the plan stays a nested loop over the ordered reports.
	recs := f.applyRecord(s.db.WithContext(ctx).Table("records AS rec").Select(streamRecordCols).Where("rec.report_id = h.id"), "rec").
		Order("rec.id")
	query, args, err := dryRun(s.db.WithContext(ctx).Table("(?) AS h", heads).Joins("CROSS JOIN LATERAL (?) AS r", recs).
		Select("h.*, r.*"))
	if err != nil {
		return err
	}
	conn, err := s.rawDB(ctx).Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: stream records: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		tx, err := c.Conn().BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return fmt.Errorf("store: stream records: %w", err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read only: nothing to keep
		// JIT compiles the plan's expressions for the row estimate of a whole export (over a
		// second of compilation measured on 1M records) and gains nothing on index lookups.
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return fmt.Errorf("store: stream records: %w", err)
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: stream records: %w", err)
		}
		defer rows.Close()
		var r RecordRow
		b := []*pgtype.DriverBytes{(*pgtype.DriverBytes)(&r.ReporterReportID), (*pgtype.DriverBytes)(&r.OrgName), (*pgtype.DriverBytes)(&r.Domain),
			(*pgtype.DriverBytes)(&r.SourceIP), (*pgtype.DriverBytes)(&r.Disposition), (*pgtype.DriverBytes)(&r.DKIM), (*pgtype.DriverBytes)(&r.SPF),
			(*pgtype.DriverBytes)(&r.Reasons), (*pgtype.DriverBytes)(&r.HeaderFrom), (*pgtype.DriverBytes)(&r.EnvelopeFrom),
			(*pgtype.DriverBytes)(&r.EnvelopeTo), (*pgtype.DriverBytes)(&r.DKIMResults), (*pgtype.DriverBytes)(&r.SPFResults)}
		dest := []any{&r.ReportID, b[0], b[1], b[2], &r.DateBegin, &r.DateEnd, &r.ID, b[3], &r.Count, b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12]}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("store: scan record: %w", err)
			}
			r.DateBegin, r.DateEnd = r.DateBegin.UTC(), r.DateEnd.UTC()
			if err := fn(&r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: stream records: %w", err)
		}
		return tx.Commit(ctx)
	})
}

// eachRecordSQLite is EachRecord on SQLite: one join walked in order (reports from their
// date index, records from records_report_idx, sorted per report), scanned into reused
// buffers. Reading holds a snapshot for the export's length, which in WAL mode blocks no writer.
func (s *Store) eachRecordSQLite(ctx context.Context, f Filter, fn func(*RecordRow) error) error {
	// The dates come as their stored text and are parsed once per report here: read as
	// DATETIME the driver parses both on every row (a quarter of the walk's CPU).
	q := s.recordsQuery(ctx, f).Select("reports.id, reports.report_id, reports.org_name, reports.domain, " +
		"CAST(reports.date_begin AS TEXT), CAST(reports.date_end AS TEXT), " + streamRecordCols).Order(streamHeadOrder + ", rec.id")
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("store: stream records: %w", err)
	}
	defer rows.Close()
	var r RecordRow
	var begin, end any
	var raw [13]sql.RawBytes
	dest := []any{&r.ReportID, &raw[0], &raw[1], &raw[2], &begin, &end, &r.ID, &raw[3], &r.Count, &raw[4], &raw[5], &raw[6], &raw[7],
		&raw[8], &raw[9], &raw[10], &raw[11], &raw[12]}
	last := int64(-1)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("store: scan record: %w", err)
		}
		if r.ReportID != last { // a report's records are consecutive: parse its dates once
			if r.DateBegin, err = asTime(begin); err == nil {
				r.DateEnd, err = asTime(end)
			}
			if err != nil {
				return err
			}
			last = r.ReportID
		}
		r.ReporterReportID, r.OrgName, r.Domain, r.SourceIP, r.Disposition, r.DKIM, r.SPF = raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6]
		r.Reasons, r.HeaderFrom, r.EnvelopeFrom, r.EnvelopeTo, r.DKIMResults, r.SPFResults = raw[7], raw[8], raw[9], raw[10], raw[11], raw[12]
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AsTime reads a time column scanned into any (SQLite hands some back as text).
var AsTime = asTime
