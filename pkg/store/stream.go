package store

import (
	"context"
	"fmt"
	"time"

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

// recordChunk bounds the records of one query of EachRecord: reports are read newest first,
// and their records fetched by report id (records_report_idx) for as many reports as hold
// this many records together, so no query sorts the whole result and memory stays bounded.
var recordChunk int64 = 20000

// EachRecord calls fn for every record of the reports matching f that matches f's record
// filters: reports newest first, records in storage order. The row passed is reused.
func (s *Store) EachRecord(ctx context.Context, f Filter, fn func(*ReportRecord) error) error {
	// Reports are read a page at a time (keyset on date_begin, id) so that neither the
	// reports' heads nor an open cursor are held while their records are read: SQLite reads
	// on one connection here, and a 10M-record database has a million reports.
	var last *reportHead
	for {
		q := s.applyReport(ctx, s.db.WithContext(ctx).Model(&Report{}), Filter{Domain: f.Domain, OrgName: f.OrgName, Start: f.Start, End: f.End}).
			Select("reports.id, reports.record_count, reports.report_id, reports.org_name, reports.domain, reports.date_begin, reports.date_end").
			Order("reports.date_begin DESC, reports.id DESC").Limit(headPage)
		if last != nil {
			q = q.Where("(reports.date_begin < ? OR (reports.date_begin = ? AND reports.id < ?))", last.begin, last.begin, last.id)
		}
		heads, err := scanHeads(q)
		if err != nil {
			return err
		}
		if err := s.walkChunks(ctx, f, heads, fn); err != nil {
			return err
		}
		if len(heads) < headPage {
			return nil
		}
		last = &heads[len(heads)-1]
	}
}

// headPage is how many reports EachRecord reads per query (a variable for the test of paging).
var headPage = 5000

func scanHeads(q *gorm.DB) ([]reportHead, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, fmt.Errorf("store: stream records: %w", err)
	}
	defer rows.Close()
	var heads []reportHead
	for rows.Next() {
		var h reportHead
		if err := rows.Scan(&h.id, &h.n, &h.meta[0], &h.meta[1], &h.meta[2], &h.times[0], &h.times[1]); err != nil {
			return nil, fmt.Errorf("store: scan report: %w", err)
		}
		if h.begin, err = asTime(h.times[0]); err != nil {
			return nil, err
		}
		heads = append(heads, h)
	}
	return heads, rows.Err()
}

type reportHead struct {
	id, n int64
	begin time.Time
	meta  [3]string // the reporter's report_id, org_name, domain
	times [2]any    // date_begin, date_end
}

// walkChunks groups the reports (given by index, newest first) into chunks of about
// recordChunk records and emits each chunk's records in report order.
func (s *Store) walkChunks(ctx context.Context, f Filter, heads []reportHead, fn func(*ReportRecord) error) error {
	var chunk []reportHead
	var held int64
	emit := func() error {
		if len(chunk) == 0 {
			return nil
		}
		ids := make([]int64, len(chunk))
		for i, r := range chunk {
			ids[i] = r.id
		}
		byReport := map[int64][]Record{}
		err := s.scanRecords(ctx, f, ids, func(r *Record) error {
			byReport[r.ReportID] = append(byReport[r.ReportID], *r)
			return nil
		})
		if err != nil {
			return err
		}
		var out ReportRecord
		for _, r := range chunk {
			out.ReporterReportID, out.OrgName, out.Domain = r.meta[0], r.meta[1], r.meta[2]
			out.DateBegin, out.DateEnd = r.times[0], r.times[1]
			for _, rec := range byReport[r.id] {
				out.Record = rec
				if err := fn(&out); err != nil {
					return err
				}
			}
		}
		chunk, held = chunk[:0], 0
		return nil
	}
	for _, h := range heads {
		id, cnt, meta, times := h.id, h.n, h.meta, h.times
		if cnt > recordChunk {
			// A very long report alone: streamed straight from its query, never held.
			if err := emit(); err != nil {
				return err
			}
			out := ReportRecord{ReporterReportID: meta[0], OrgName: meta[1], Domain: meta[2], DateBegin: times[0], DateEnd: times[1]}
			if err := s.scanRecords(ctx, f, []int64{id}, func(r *Record) error {
				out.Record = *r
				return fn(&out)
			}); err != nil {
				return err
			}
			continue
		}
		chunk = append(chunk, h)
		held += cnt
		if held >= recordChunk {
			if err := emit(); err != nil {
				return err
			}
		}
	}
	return emit()
}

// scanRecords streams the records of some reports that match f's record filters, by report
// and storage order.
func (s *Store) scanRecords(ctx context.Context, f Filter, reportIDs []int64, fn func(*Record) error) error {
	q := f.applyRecord(s.db.WithContext(ctx).Table("records AS rec").Where("rec.report_id IN ?", reportIDs), "rec").
		Select("rec.id, rec.report_id, rec.source_ip, rec.count, rec.disposition, rec.dkim, rec.spf, " +
			"rec.header_from, rec.envelope_from, rec.envelope_to, rec.reasons, rec.dkim_results, rec.spf_results").
		Order("rec.report_id, rec.id")
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("store: stream records: %w", err)
	}
	defer rows.Close()
	var r Record
	for rows.Next() {
		if err := rows.Scan(&r.ID, &r.ReportID, &r.SourceIP, &r.Count, &r.Disposition, &r.DKIM, &r.SPF, &r.HeaderFrom,
			&r.EnvelopeFrom, &r.EnvelopeTo, &r.Reasons, &r.DKIMResults, &r.SPFResults); err != nil {
			return fmt.Errorf("store: scan record: %w", err)
		}
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
