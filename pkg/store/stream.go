package store

import (
	"context"
	"fmt"

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

// ReportRecord is a record with the report it belongs to, one row of a records export.
type ReportRecord struct {
	Record
	ReporterReportID string // the reporter's report_id
	OrgName          string
	Domain           string
	DateBegin        any // time.Time (PostgreSQL) or text (SQLite): see AsTime
	DateEnd          any
}

// recordsQuery selects the records of the reports matching f that match f's record filters.
func (s *Store) recordsQuery(ctx context.Context, f Filter) *gorm.DB {
	q := s.applyReport(ctx, s.db.WithContext(ctx).Table("reports"), Filter{Domain: f.Domain, OrgName: f.OrgName, Start: f.Start, End: f.End}).
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

// EachRecord calls fn for every record of the reports matching f that matches f's record
// filters: reports newest first, records in storage order. The row passed is reused.
func (s *Store) EachRecord(ctx context.Context, f Filter, fn func(*ReportRecord) error) error {
	q := s.recordsQuery(ctx, f).Select("rec.id, rec.report_id, rec.source_ip, rec.count, rec.disposition, rec.dkim, rec.spf, " +
		"rec.header_from, rec.envelope_from, rec.envelope_to, rec.reasons, rec.dkim_results, rec.spf_results, " +
		"reports.report_id, reports.org_name, reports.domain, reports.date_begin, reports.date_end").
		Order("reports.date_begin DESC, reports.id DESC, rec.id")
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("store: stream records: %w", err)
	}
	defer rows.Close()
	var r ReportRecord
	for rows.Next() {
		var envFrom, envTo, reasons, dkimRes, spfRes *string
		if err := rows.Scan(&r.ID, &r.ReportID, &r.SourceIP, &r.Count, &r.Disposition, &r.DKIM, &r.SPF, &r.HeaderFrom,
			&envFrom, &envTo, &reasons, &dkimRes, &spfRes, &r.ReporterReportID, &r.OrgName, &r.Domain, &r.DateBegin, &r.DateEnd); err != nil {
			return fmt.Errorf("store: scan record: %w", err)
		}
		r.EnvelopeFrom, r.EnvelopeTo, r.Reasons, r.DKIMResults, r.SPFResults = deref(envFrom), deref(envTo), deref(reasons), deref(dkimRes), deref(spfRes)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// AsTime reads a time column scanned into any (see ReportRecord).
var AsTime = asTime
