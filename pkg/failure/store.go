package failure

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/vigilhq/vigil/pkg/store"
)

// row is a failure_reports row; times are Unix seconds.
type row struct {
	ID                    int64
	IngestID              int64
	ContentSHA256         string `gorm:"column:content_sha256"`
	Format                string
	Domain                string
	SourceIP              string `gorm:"column:source_ip"`
	SourceIPBin           []byte `gorm:"column:source_ip_bin"`
	ArrivalDate           *int64
	SortDate              int64
	AuthFailure           string
	ReportedBy            string
	FeedbackType          string
	UserAgent             string
	Version               string
	OriginalMailFrom      string
	OriginalRcptTo        string // JSON
	OriginalEnvelopeID    string `gorm:"column:original_envelope_id"`
	AuthenticationResults string // JSON
	DKIMDomain            string `gorm:"column:dkim_domain"`
	DKIMIdentity          string `gorm:"column:dkim_identity"`
	DKIMSelector          string `gorm:"column:dkim_selector"`
	SPFDNS                string `gorm:"column:spf_dns"`
	DeliveryResult        string
	IdentityAlignment     string
	DKIMResult            string `gorm:"column:dkim_result"`
	SPFResult             string `gorm:"column:spf_result"`
	Disposition           string
	ReportedURI           string `gorm:"column:reported_uri"` // JSON
	Subject               string
	SampleHeaders         string // JSON
	SampleBody            *string
	Redacted              bool
	Warnings              string // JSON
	CreatedAt             int64
}

func (row) TableName() string { return "failure_reports" }

// Store keeps failure reports.
type Store struct {
	st  *store.Store
	now func() time.Time
}

// NewStore builds the store.
func NewStore(st *store.Store, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{st: st, now: now}
}

// Saved says what Save did.
type Saved struct {
	ID int64
	// Duplicate: the same report message was stored before from another file (a retry of
	// this same file is not a duplicate).
	Duplicate bool
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func ipBin(s string) []byte {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil
	}
	b := a.Unmap().As16()
	return b[:]
}

// Save stores one report unless the same message is stored already. received is when the
// file came in: the date lists sort by when the report has no Arrival-Date. It commits like
// the rest of the pipeline's results (store.WriteDerived).
func (s *Store) Save(ctx context.Context, ingestID int64, r *Report, received time.Time) (Saved, error) {
	rw := row{IngestID: ingestID, ContentSHA256: r.SHA256, Format: r.Format, Domain: r.Domain, SourceIP: r.SourceIP,
		SourceIPBin: ipBin(r.SourceIP), SortDate: received.Unix(), AuthFailure: r.AuthFailure, ReportedBy: r.ReportedBy,
		FeedbackType: r.FeedbackType, UserAgent: r.UserAgent, Version: r.Version, OriginalMailFrom: r.OriginalMailFrom,
		OriginalRcptTo: js(r.OriginalRcptTo), OriginalEnvelopeID: r.OriginalEnvelopeID, AuthenticationResults: js(r.AuthenticationResults),
		DKIMDomain: r.DKIMDomain, DKIMIdentity: r.DKIMIdentity, DKIMSelector: r.DKIMSelector, SPFDNS: r.SPFDNS,
		DeliveryResult: r.DeliveryResult, IdentityAlignment: r.IdentityAlignment, DKIMResult: r.DKIMResult, SPFResult: r.SPFResult,
		Disposition: r.Disposition, ReportedURI: js(r.ReportedURI), Subject: r.Subject, SampleHeaders: js(r.SampleHeaders),
		SampleBody: r.SampleBody, Redacted: r.Redacted, Warnings: js(r.Warnings), CreatedAt: s.now().Unix()}
	if r.ArrivalDate != nil {
		t := r.ArrivalDate.Unix()
		rw.ArrivalDate, rw.SortDate = &t, t
	}
	var out Saved
	err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rw)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			out.ID = rw.ID
			return nil
		}
		var prev row
		if err := tx.Select("id", "ingest_id").Where("content_sha256 = ?", rw.ContentSHA256).Take(&prev).Error; err != nil {
			return fmt.Errorf("failure: find the stored copy: %w", err)
		}
		out = Saved{ID: prev.ID, Duplicate: prev.IngestID != ingestID}
		return nil
	})
	if err != nil {
		return Saved{}, fmt.Errorf("failure: save report: %w", err)
	}
	return out, nil
}

// Filter holds the common filters as they apply to failure reports: the window is on the
// arrival date (else when the file came in), org_name is the reporter.
type Filter struct {
	store.Filter
}

func (f Filter) where(q *gorm.DB) *gorm.DB {
	if f.Domain != "" {
		q = q.Where("f.domain = ?", f.Domain)
	}
	if f.OrgName != "" {
		q = q.Where("f.reported_by = ?", strings.ToLower(f.OrgName))
	}
	if !f.Start.IsZero() {
		q = q.Where("f.sort_date >= ?", f.Start.Unix())
	}
	if !f.End.IsZero() {
		q = q.Where("f.sort_date < ?", f.End.Unix())
	}
	switch {
	case f.SourceIP.IsValid():
		b := f.SourceIP.Unmap().As16()
		q = q.Where("f.source_ip_bin = ?", b[:])
	case f.SourceRange.IsValid():
		lo, hi := store.IPRange(f.SourceRange)
		q = q.Where("f.source_ip_bin BETWEEN ? AND ?", lo, hi)
	}
	if f.DKIM != "" {
		q = q.Where("f.dkim_result = ?", f.DKIM)
	}
	if f.SPF != "" {
		q = q.Where("f.spf_result = ?", f.SPF)
	}
	if f.Disposition != "" {
		q = q.Where("f.disposition = ?", f.Disposition)
	}
	return q
}

// ErrNotFound: no such report.
var ErrNotFound = store.ErrNotFound

// listColumns leave out the sample (headers and body), which only the detail shows.
const listColumns = "f.id, f.ingest_id, f.content_sha256, f.format, f.domain, f.source_ip, f.arrival_date, f.sort_date, f.auth_failure, " +
	"f.reported_by, f.feedback_type, f.user_agent, f.version, f.original_mail_from, f.delivery_result, f.dkim_result, f.spf_result, " +
	"f.disposition, f.subject, f.redacted, f.warnings, f.created_at"

// List returns one page of reports matching f, newest first.
func (s *Store) List(ctx context.Context, f Filter, page, size int) ([]row, int64, error) {
	return store.KindPage[row](ctx, s.st, "failure_reports f", f.where, listColumns, "f.sort_date DESC, f.id DESC", page, size)
}

// IngestReportIDs lists the failure reports each file stored (not the ones it repeated: a
// duplicate keeps no link to the later file), ascending; a file without any is absent.
func (s *Store) IngestReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error) {
	return store.KindIngestIDs(ctx, s.st, "failure_reports", ingestIDs)
}

// Get returns one report.
func (s *Store) Get(ctx context.Context, id int64) (row, error) {
	return store.KindGet[row](ctx, s.st, id)
}

// Rollup is GET /api/rollup/failures: failure reports per domain and day, by failed
// mechanism, and the source IPs and reporters sending the most.
type Rollup struct {
	Reports      int64         `json:"reports"`
	Days         []RollupDay   `json:"days"`
	AuthFailures []RollupCount `json:"auth_failures"`
	SourceIPs    []RollupCount `json:"source_ips"`
	Reporters    []RollupCount `json:"reporters"`
	Domains      []RollupCount `json:"domains"`
}

// RollupDay is one domain on one UTC day (of the arrival date).
type RollupDay struct {
	Date    string `json:"date"`
	Domain  string `json:"domain"`
	Reports int64  `json:"reports"`
}

// RollupCount is one value with its number of reports.
type RollupCount struct {
	Value   string `json:"value"`
	Reports int64  `json:"reports"`
}

const maxRollupDays = 3660

// Rollup counts the reports matching f; limit bounds each ranking.
func (s *Store) Rollup(ctx context.Context, f Filter, limit int) (Rollup, error) {
	db := s.st.DB().WithContext(ctx)
	out := Rollup{Days: []RollupDay{}, AuthFailures: []RollupCount{}, SourceIPs: []RollupCount{}, Reporters: []RollupCount{}, Domains: []RollupCount{}}
	q := func() *gorm.DB { return f.where(db.Table("failure_reports f")) }
	if err := q().Count(&out.Reports).Error; err != nil {
		return out, fmt.Errorf("failure: rollup: %w", err)
	}
	var days []struct {
		Day     int64
		Domain  string
		Reports int64
	}
	// Integer division floors for the non-negative Unix times stored: the UTC day.
	if err := q().Select("f.sort_date / 86400 AS day, f.domain AS domain, COUNT(*) AS reports").Group("f.sort_date / 86400, f.domain").
		Order("day, domain").Limit(maxRollupDays).Scan(&days).Error; err != nil {
		return out, fmt.Errorf("failure: rollup days: %w", err)
	}
	for _, d := range days {
		out.Days = append(out.Days, RollupDay{Date: time.Unix(d.Day*86400, 0).UTC().Format(time.DateOnly), Domain: d.Domain, Reports: d.Reports})
	}
	for _, g := range []struct {
		col string
		dst *[]RollupCount
	}{{"f.auth_failure", &out.AuthFailures}, {"f.source_ip", &out.SourceIPs}, {"f.reported_by", &out.Reporters}, {"f.domain", &out.Domains}} {
		if err := q().Where(g.col + " <> ''").Select(g.col + " AS value, COUNT(*) AS reports").Group(g.col).
			Order("reports DESC, value").Limit(limit).Scan(g.dst).Error; err != nil {
			return out, fmt.Errorf("failure: rollup %s: %w", g.col, err)
		}
	}
	return out, nil
}
