package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Filter holds the common filters of list, rollup and export endpoints (DESIGN.md). Zero fields
// do not filter. Start is inclusive, End exclusive; a report matches by its date_begin.
type Filter struct {
	Domain      string
	OrgName     string // case-insensitive exact match
	Start, End  time.Time
	SourceIP    netip.Addr   // exact
	SourceRange netip.Prefix // CIDR
	DKIM        string       // policy-evaluated dkim result
	SPF         string
	Disposition string
	// What enrichment knows of the source (pkg/senders keeps it in sender_sources): the
	// named sender (lower case), the country (ISO 3166 alpha-2, upper case), the AS number.
	// A source not enriched yet matches none of them.
	Sender  string
	Country string
	ASN     int64
	// Report narrows to one report by its id (the records export of a single report); 0: any.
	Report int64 `json:",omitempty"`
}

// HasEnrichFilter reports whether f selects sources by what enrichment found.
func (f Filter) HasEnrichFilter() bool { return f.Sender != "" || f.Country != "" || f.ASN != 0 }

// EnrichCondition is the SQL condition over sender_sources (aliased ss) of the enrichment
// filters, with its arguments; "" without them.
func (f Filter) EnrichCondition() (string, []any) {
	var conds []string
	var args []any
	if f.Sender != "" {
		conds, args = append(conds, "ss.sender = ?"), append(args, f.Sender)
	}
	if f.Country != "" {
		conds, args = append(conds, "ss.country = ?"), append(args, f.Country)
	}
	if f.ASN != 0 {
		conds, args = append(conds, "ss.asn = ?"), append(args, f.ASN)
	}
	return strings.Join(conds, " AND "), args
}

func (f Filter) hasRecordFilter() bool {
	return f.SourceIP.IsValid() || f.SourceRange.IsValid() || f.DKIM != "" || f.SPF != "" || f.Disposition != "" || f.HasEnrichFilter()
}

// IPRange returns the inclusive 16-byte bounds of a prefix, the form records.ip is stored in.
func IPRange(p netip.Prefix) (lo, hi []byte) {
	p = p.Masked()
	a := p.Addr()
	bits := p.Bits()
	if a.Is4() {
		bits += 96
	}
	b := a.As16()
	l, h := b, b
	for i := bits; i < 128; i++ {
		h[i/8] |= 1 << (7 - uint(i%8))
	}
	return l[:], h[:]
}

// applyRecord narrows a records query (aliased rec) by the record-level filters.
func (f Filter) applyRecord(q *gorm.DB, alias string) *gorm.DB {
	if f.SourceIP.IsValid() {
		b := f.SourceIP.Unmap().As16()
		q = q.Where(alias+".ip = ?", b[:])
	}
	if f.SourceRange.IsValid() {
		lo, hi := IPRange(f.SourceRange)
		q = q.Where(alias+".ip BETWEEN ? AND ?", lo, hi)
	}
	if f.DKIM != "" {
		q = q.Where(alias+".dkim = ?", f.DKIM)
	}
	if f.SPF != "" {
		q = q.Where(alias+".spf = ?", f.SPF)
	}
	if f.Disposition != "" {
		q = q.Where(alias+".disposition = ?", f.Disposition)
	}
	if cond, args := f.EnrichCondition(); cond != "" {
		q = q.Where(alias+".ip IN (SELECT i.ip FROM sender_sources ss JOIN rollup_ips i ON i.id = ss.ip_id WHERE "+cond+")", args...)
	}
	return q
}

func (s *Store) applyReport(ctx context.Context, q *gorm.DB, f Filter) *gorm.DB {
	if f.Domain != "" {
		q = q.Where("reports.domain = ?", strings.ToLower(f.Domain))
	}
	if f.OrgName != "" {
		q = q.Where("reports.org_key = ?", orgKey(f.OrgName))
	}
	if f.Report != 0 {
		q = q.Where("reports.id = ?", f.Report)
	}
	if !f.Start.IsZero() {
		q = q.Where("reports.date_begin >= ?", f.Start.UTC())
	}
	if !f.End.IsZero() {
		q = q.Where("reports.date_begin < ?", f.End.UTC())
	}
	if f.hasRecordFilter() {
		sub := f.applyRecord(s.db.WithContext(ctx).Table("records AS rec").Select("1").Where("rec.report_id = reports.id"), "rec")
		q = q.Where("EXISTS (?)", sub)
	}
	return q
}

// Page is a 1-based page of a list.
type Page struct{ Number, Size int }

func (p Page) offset() int { return (p.Number - 1) * p.Size }

// ReportSortKeys maps the sort keys GET /api/reports accepts to the column each orders by.
// Each column leads an index (migration 00020 adds the last two), so a page of a sorted list
// reads the index instead of sorting every matching report; org_name sorts by org_key, the
// lower-cased name, so "Google" and "google.com" sit together.
var ReportSortKeys = map[string]string{
	"date_begin": "reports.date_begin",
	"domain":     "reports.domain",
	"org_name":   "reports.org_key",
	"messages":   "reports.message_count",
}

// ReportOrder is the order of a report list: a key of ReportSortKeys, descending or not.
// The zero value is the default, newest first.
type ReportOrder struct {
	Key  string
	Desc bool
}

// ParseReportOrder reads a sort parameter: a key of ReportSortKeys, prefixed with "-" for
// descending. Empty is the default order.
func ParseReportOrder(v string) (ReportOrder, error) {
	if v == "" {
		return ReportOrder{}, nil
	}
	o := ReportOrder{Key: strings.TrimPrefix(v, "-"), Desc: strings.HasPrefix(v, "-")}
	if _, ok := ReportSortKeys[o.Key]; !ok {
		return ReportOrder{}, fmt.Errorf("unknown sort key %q", v)
	}
	return o, nil
}

// clause is the ORDER BY of the order; the id breaks ties so pages never overlap or skip.
func (o ReportOrder) clause() string {
	col, ok := ReportSortKeys[o.Key]
	if !ok {
		return "reports.date_begin DESC, reports.id DESC"
	}
	if o.Desc {
		return col + " DESC, reports.id DESC"
	}
	return col + " ASC, reports.id ASC"
}

// ListReports returns reports newest first and the total matching count.
func (s *Store) ListReports(ctx context.Context, f Filter, p Page) ([]Report, int64, error) {
	return s.ListReportsOrdered(ctx, f, p, ReportOrder{})
}

// ListReportsOrdered returns a page of reports in the order given and the total matching count.
func (s *Store) ListReportsOrdered(ctx context.Context, f Filter, p Page, o ReportOrder) ([]Report, int64, error) {
	base := s.applyReport(ctx, s.db.WithContext(ctx).Model(&Report{}), f)
	var total int64
	if err := base.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count reports: %w", err)
	}
	var out []Report
	err := base.Session(&gorm.Session{}).Order(o.clause()).Offset(p.offset()).Limit(p.Size).Find(&out).Error
	if err != nil {
		return nil, 0, fmt.Errorf("store: list reports: %w", err)
	}
	return out, total, nil
}

// GetReport returns one report or ErrNotFound.
func (s *Store) GetReport(ctx context.Context, id int64) (Report, error) {
	var r Report
	err := s.db.WithContext(ctx).Take(&r, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Report{}, fmt.Errorf("report %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Report{}, fmt.Errorf("store: get report %d: %w", id, err)
	}
	return r, nil
}

// ListRecords returns a report's records in the order they were stored.
func (s *Store) ListRecords(ctx context.Context, reportID int64, f Filter, p Page) ([]Record, int64, error) {
	base := f.applyRecord(s.db.WithContext(ctx).Table("records AS rec").Where("rec.report_id = ?", reportID), "rec")
	var total int64
	if err := base.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count records: %w", err)
	}
	var out []Record
	err := base.Session(&gorm.Session{}).Select("rec.*").Order("rec.id").Offset(p.offset()).Limit(p.Size).Find(&out).Error
	if err != nil {
		return nil, 0, fmt.Errorf("store: list records: %w", err)
	}
	return out, total, nil
}

// DomainSummary is one policy domain with its report volume.
type DomainSummary struct {
	Domain       string
	ReportCount  int64
	MessageCount int64
	FirstReport  time.Time
	LastReport   time.Time
}

// ListDomains lists every policy domain seen, alphabetically, with counts.
func (s *Store) ListDomains(ctx context.Context, f Filter) ([]DomainSummary, error) {
	q := s.applyReport(ctx, s.db.WithContext(ctx).Model(&Report{}), f).
		Select("reports.domain, COUNT(*), COALESCE(SUM(reports.message_count), 0), MIN(reports.date_begin), MAX(reports.date_end)").
		Group("reports.domain").Order("reports.domain")
	rows, err := q.Rows()
	if err != nil {
		return nil, fmt.Errorf("store: list domains: %w", err)
	}
	defer rows.Close()
	var out []DomainSummary
	for rows.Next() {
		var d DomainSummary
		var first, last any
		if err := rows.Scan(&d.Domain, &d.ReportCount, &d.MessageCount, &first, &last); err != nil {
			return nil, fmt.Errorf("store: scan domain: %w", err)
		}
		if d.FirstReport, err = asTime(first); err != nil {
			return nil, err
		}
		if d.LastReport, err = asTime(last); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// asTime reads an aggregate over a time column: PostgreSQL hands back time.Time, SQLite the
// text it stored (MIN/MAX lose the column type).
func asTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t.UTC(), nil
	case string:
		return parseSQLiteTime(t)
	case []byte:
		return parseSQLiteTime(string(t))
	case nil:
		return time.Time{}, nil
	}
	return time.Time{}, fmt.Errorf("store: unexpected time value %T", v)
}

func parseSQLiteTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999 -0700 MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("store: unreadable time %q", s)
}
