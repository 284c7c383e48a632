package tlsrpt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// row is a tls_reports row (times in Unix seconds, as in every table of this migration).
type row struct {
	ID                 int64
	IngestID           int64
	OrganizationName   string
	OrgKey             string
	ContactInfo        string
	ReportID           string `gorm:"column:report_id"`
	DateBegin          int64
	DateEnd            int64
	PolicyDomain       string
	PolicyDomains      string // JSON list
	SuccessfulSessions int64
	FailedSessions     int64
	Policies           string // JSON
	Warnings           string // JSON list
	CreatedAt          int64
}

func (row) TableName() string { return "tls_reports" }

type policyRow struct {
	TLSReportID        int64 `gorm:"column:tls_report_id"`
	Idx                int
	PolicyType         string
	PolicyDomain       string
	Day                int64
	SuccessfulSessions int64
	FailedSessions     int64
}

func (policyRow) TableName() string { return "tls_report_policies" }

type failureRow struct {
	TLSReportID         int64 `gorm:"column:tls_report_id"`
	PolicyIdx           int
	Idx                 int
	PolicyDomain        string
	Day                 int64
	ResultType          string
	SendingMTAIP        string `gorm:"column:sending_mta_ip"`
	SendingMTAIPBin     []byte `gorm:"column:sending_mta_ip_bin"`
	ReceivingMXHostname string `gorm:"column:receiving_mx_hostname"`
	ReceivingIP         string `gorm:"column:receiving_ip"`
	FailedSessionCount  int64
}

func (failureRow) TableName() string { return "tls_report_failures" }

// Store keeps TLS reports in the database of pkg/store.
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

// Saved says what Save did with a report.
type Saved struct {
	ID int64
	// Duplicate: the same report (reporter, report-id, period) was stored before from another
	// file. A report found stored from this same file (a retried task) is not a duplicate.
	Duplicate bool
}

const day = 86400

// Save stores one report with its policies and failure details in one transaction, unless
// its identity is stored already (SaveMany of one).
func (s *Store) Save(ctx context.Context, ingestID int64, r *Report) (Saved, error) {
	out, err := s.SaveMany(ctx, []Pending{{IngestID: ingestID, Report: r}})
	if err != nil {
		return Saved{}, err
	}
	return out[0], nil
}

// Pending is one report to store and the file it came from.
type Pending struct {
	IngestID int64
	Report   *Report
}

// identity is what makes two reports one (the table's UNIQUE constraint).
type identity struct {
	org, id    string
	begin, end int64
}

// SaveMany stores reports with their policies and failure details in one transaction: one
// multi-row INSERT … ON CONFLICT DO NOTHING for the reports, then the children of the new
// ones; a report whose identity is stored already (before, or earlier in items) is not
// stored again, and is a duplicate unless it was stored from the same file (a retried
// task). It is committed without waiting for the disk (store.WriteDerived): the original is
// durable, and the pipeline makes the outcome durable before its task completes.
func (s *Store) SaveMany(ctx context.Context, items []Pending) ([]Saved, error) {
	rows := make([]row, len(items))
	now := s.now().Unix()
	for i, it := range items {
		rw, err := newRow(it.IngestID, it.Report, now)
		if err != nil {
			return nil, err
		}
		rows[i] = rw
	}
	out := make([]Saved, len(items))
	err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		created, err := insertRows(tx, rows)
		if err != nil {
			return err
		}
		var children []int
		for i, rw := range rows {
			k := identity{rw.OrgKey, rw.ReportID, rw.DateBegin, rw.DateEnd}
			if id, ok := created[k]; ok {
				delete(created, k) // the first item with this identity is the stored one
				out[i] = Saved{ID: id}
				rows[i].ID = id
				children = append(children, i)
				continue
			}
			var prev row
			if err := tx.Select("id", "ingest_id").Where("org_key = ? AND report_id = ? AND date_begin = ? AND date_end = ?",
				rw.OrgKey, rw.ReportID, rw.DateBegin, rw.DateEnd).Take(&prev).Error; err != nil {
				return fmt.Errorf("tlsrpt: find the stored copy: %w", err)
			}
			out[i] = Saved{ID: prev.ID, Duplicate: prev.IngestID != rw.IngestID}
		}
		return insertChildren(tx, rows, items, children)
	})
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: save %d reports: %w", len(items), err)
	}
	return out, nil
}

func newRow(ingestID int64, r *Report, now int64) (row, error) {
	ok, failed := r.Totals()
	pols, err := json.Marshal(r.Policies)
	if err != nil {
		return row{}, fmt.Errorf("tlsrpt: encode policies: %w", err)
	}
	doms, _ := json.Marshal(r.Domains())
	warns, _ := json.Marshal(nonNil(r.Warnings))
	first := ""
	if len(r.Policies) > 0 {
		first = r.Policies[0].PolicyDomain
	}
	return row{IngestID: ingestID, OrganizationName: r.OrganizationName, OrgKey: strings.ToLower(r.OrganizationName),
		ContactInfo: r.ContactInfo, ReportID: r.ReportID, DateBegin: r.DateBegin.Unix(), DateEnd: r.DateEnd.Unix(),
		PolicyDomain: first, PolicyDomains: string(doms), SuccessfulSessions: ok, FailedSessions: failed,
		Policies: string(pols), Warnings: string(warns), CreatedAt: now}, nil
}

// rowsPerInsert keeps one INSERT of reports under PostgreSQL's 65,535 bind parameters (13
// columns a row) and its statement text modest.
const rowsPerInsert = 500

// insertRows inserts the rows whose identity is not stored yet and returns the ids of those
// it inserted by identity (a statement with two rows of one identity inserts the first). It
// is a plain statement: gorm's batch Create would pair returned ids with rows by position,
// which is wrong as soon as a conflict skips one.
func insertRows(tx *gorm.DB, rows []row) (map[identity]int64, error) {
	created := make(map[identity]int64, len(rows))
	for start := 0; start < len(rows); start += rowsPerInsert {
		part := rows[start:min(start+rowsPerInsert, len(rows))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO tls_reports (ingest_id, organization_name, org_key, contact_info, report_id, date_begin, date_end,
			policy_domain, policy_domains, successful_sessions, failed_sessions, policies, warnings, created_at) VALUES `)
		args := make([]any, 0, len(part)*14)
		for i, r := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.IngestID, r.OrganizationName, r.OrgKey, r.ContactInfo, r.ReportID, r.DateBegin, r.DateEnd,
				r.PolicyDomain, r.PolicyDomains, r.SuccessfulSessions, r.FailedSessions, r.Policies, r.Warnings, r.CreatedAt)
		}
		sb.WriteString(" ON CONFLICT (org_key, report_id, date_begin, date_end) DO NOTHING RETURNING id, org_key, report_id, date_begin, date_end")
		var got []struct {
			ID        int64
			OrgKey    string
			ReportID  string `gorm:"column:report_id"`
			DateBegin int64
			DateEnd   int64
		}
		if err := tx.Raw(sb.String(), args...).Scan(&got).Error; err != nil {
			return nil, fmt.Errorf("tlsrpt: insert reports: %w", err)
		}
		for _, g := range got {
			created[identity{g.OrgKey, g.ReportID, g.DateBegin, g.DateEnd}] = g.ID
		}
	}
	return created, nil
}

// insertChildren writes the rows the domain filter and the rollup read for the reports
// rows[i] of each i in which, in batches that stay under PostgreSQL's bind-parameter limit.
func insertChildren(tx *gorm.DB, rows []row, items []Pending, which []int) error {
	var pols []policyRow
	var fails []failureRow
	for _, k := range which {
		id, r := rows[k].ID, items[k].Report
		d := r.DateBegin.Unix() / day
		for i, p := range r.Policies {
			pols = append(pols, policyRow{TLSReportID: id, Idx: i, PolicyType: p.PolicyType, PolicyDomain: p.PolicyDomain, Day: d,
				SuccessfulSessions: p.SuccessfulSessions, FailedSessions: p.FailedSessions})
			for j, f := range p.FailureDetails {
				fails = append(fails, failureRow{TLSReportID: id, PolicyIdx: i, Idx: j, PolicyDomain: p.PolicyDomain, Day: d,
					ResultType: f.ResultType, SendingMTAIP: f.SendingMTAIP, ReceivingMXHostname: f.ReceivingMXHostname,
					ReceivingIP: f.ReceivingIP, FailedSessionCount: f.FailedSessionCount, SendingMTAIPBin: ipBin(f.SendingMTAIP)})
			}
		}
	}
	if len(pols) > 0 {
		if err := tx.CreateInBatches(pols, 1000).Error; err != nil {
			return err
		}
	}
	if len(fails) > 0 {
		return tx.CreateInBatches(fails, 1000).Error
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Filter is what the list and rollup endpoints filter on (the common filters that apply to
// TLS reports). Zero fields do not filter; Start is inclusive, End exclusive, on date_begin.
type Filter struct {
	Domain      string
	OrgName     string
	Start, End  time.Time
	SourceIP    netip.Addr   // a failure detail's sending-mta-ip
	SourceRange netip.Prefix // the same, by CIDR
}

// where restricts q, a query over tls_reports aliased r.
func (f Filter) where(q *gorm.DB) *gorm.DB {
	if f.Domain != "" {
		q = q.Where("EXISTS (SELECT 1 FROM tls_report_policies p WHERE p.tls_report_id = r.id AND p.policy_domain = ?)", f.Domain)
	}
	if f.OrgName != "" {
		q = q.Where("r.org_key = ?", strings.ToLower(f.OrgName))
	}
	if !f.Start.IsZero() {
		q = q.Where("r.date_begin >= ?", f.Start.Unix())
	}
	if !f.End.IsZero() {
		q = q.Where("r.date_begin < ?", f.End.Unix())
	}
	switch {
	case f.SourceIP.IsValid():
		b := f.SourceIP.Unmap().As16()
		q = q.Where("EXISTS (SELECT 1 FROM tls_report_failures x WHERE x.tls_report_id = r.id AND x.sending_mta_ip_bin = ?)", b[:])
	case f.SourceRange.IsValid():
		lo, hi := store.IPRange(f.SourceRange)
		q = q.Where("EXISTS (SELECT 1 FROM tls_report_failures x WHERE x.tls_report_id = r.id AND x.sending_mta_ip_bin BETWEEN ? AND ?)", lo, hi)
	}
	return q
}

// ipBin is an address as the IP filters compare it (16 bytes, IPv4 mapped); nil for a value
// that is no address.
func ipBin(s string) []byte {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil
	}
	b := a.Unmap().As16()
	return b[:]
}

// ErrNotFound: no such report.
var ErrNotFound = store.ErrNotFound

// Page selects one page of a list (Number from 1).
type Page struct{ Number, Size int }

// listColumns leave out the policies, which only the detail shows.
const listColumns = "r.id, r.ingest_id, r.organization_name, r.org_key, r.contact_info, r.report_id, r.date_begin, r.date_end, " +
	"r.policy_domain, r.policy_domains, r.successful_sessions, r.failed_sessions, r.warnings, r.created_at"

// List returns one page of reports matching f, newest first.
func (s *Store) List(ctx context.Context, f Filter, p Page) ([]row, int64, error) {
	return store.KindPage[row](ctx, s.st, "tls_reports r", f.where, listColumns, "r.date_begin DESC, r.id DESC", p.Number, p.Size)
}

// IngestReportIDs lists the TLS reports each file stored (not the ones it repeated: a
// duplicate keeps no link to the later file), ascending; a file without any is absent.
func (s *Store) IngestReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error) {
	return store.KindIngestIDs(ctx, s.st, "tls_reports", ingestIDs)
}

// Get returns one report.
func (s *Store) Get(ctx context.Context, id int64) (row, error) {
	return store.KindGet[row](ctx, s.st, id)
}

// Rollup is GET /api/rollup/tls: sessions per domain and day, per domain, failure types and
// the MX hosts with the most failed sessions.
type Rollup struct {
	SuccessfulSessions int64          `json:"successful_sessions"`
	FailedSessions     int64          `json:"failed_sessions"`
	FailureRate        float64        `json:"failure_rate"`
	Reports            int64          `json:"reports"`
	Days               []RollupDay    `json:"days"`
	DaysTruncated      bool           `json:"days_truncated"`
	Domains            []RollupDomain `json:"domains"`
	FailureTypes       []RollupType   `json:"failure_types"`
	TopMXHosts         []RollupMX     `json:"top_mx_hosts"`
}

// RollupDay is one domain on one UTC day (the day a report's period begins).
type RollupDay struct {
	Date               string `json:"date"`
	Domain             string `json:"domain"`
	SuccessfulSessions int64  `json:"successful_sessions"`
	FailedSessions     int64  `json:"failed_sessions"`
}

// RollupDomain is one policy domain over the whole window.
type RollupDomain struct {
	Domain             string  `json:"domain"`
	SuccessfulSessions int64   `json:"successful_sessions"`
	FailedSessions     int64   `json:"failed_sessions"`
	FailureRate        float64 `json:"failure_rate"`
}

// RollupType is one result type with its failed sessions.
type RollupType struct {
	ResultType     string `json:"result_type"`
	FailedSessions int64  `json:"failed_sessions"`
}

// RollupMX is one receiving MX host with its failed sessions.
type RollupMX struct {
	ReceivingMXHostname string `json:"receiving_mx_hostname"`
	FailedSessions      int64  `json:"failed_sessions"`
}

// maxRollupDays bounds the day series of one answer (ten years of one domain, or a year of
// ten); past it the answer says days_truncated and the caller narrows the filters.
const maxRollupDays = 3660

func rate(ok, failed int64) float64 {
	if ok+failed == 0 {
		return 0
	}
	return float64(failed) / float64(ok+failed)
}

// Rollup sums the policies and failure details of the reports matching f; limit bounds the
// domains, failure types and MX hosts listed.
func (s *Store) Rollup(ctx context.Context, f Filter, limit int) (Rollup, error) {
	db := s.st.DB().WithContext(ctx)
	out := Rollup{Days: []RollupDay{}, Domains: []RollupDomain{}, FailureTypes: []RollupType{}, TopMXHosts: []RollupMX{}}
	// The policy rows of matching reports; with a domain filter only that domain's policies
	// count (a report may cover several domains).
	pol := func() *gorm.DB {
		q := f.where(db.Table("tls_report_policies p").Joins("JOIN tls_reports r ON r.id = p.tls_report_id"))
		if f.Domain != "" {
			q = q.Where("p.policy_domain = ?", f.Domain)
		}
		return q
	}
	fail := func() *gorm.DB {
		q := f.where(db.Table("tls_report_failures x0").Joins("JOIN tls_reports r ON r.id = x0.tls_report_id"))
		if f.Domain != "" {
			q = q.Where("x0.policy_domain = ?", f.Domain)
		}
		return q
	}
	var tot struct {
		Ok, Failed int64
	}
	if err := pol().Select("COALESCE(SUM(p.successful_sessions), 0) AS ok, COALESCE(SUM(p.failed_sessions), 0) AS failed").Scan(&tot).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup totals: %w", err)
	}
	out.SuccessfulSessions, out.FailedSessions, out.FailureRate = tot.Ok, tot.Failed, rate(tot.Ok, tot.Failed)
	if err := f.where(db.Table("tls_reports r")).Count(&out.Reports).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup reports: %w", err)
	}
	var days []struct {
		Day        int64
		Domain     string
		Ok, Failed int64
	}
	if err := pol().Select("p.day AS day, p.policy_domain AS domain, SUM(p.successful_sessions) AS ok, SUM(p.failed_sessions) AS failed").
		Group("p.day, p.policy_domain").Order("p.day, p.policy_domain").Limit(maxRollupDays + 1).Scan(&days).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup days: %w", err)
	}
	if len(days) > maxRollupDays {
		days, out.DaysTruncated = days[:maxRollupDays], true
	}
	for _, d := range days {
		out.Days = append(out.Days, RollupDay{Date: time.Unix(d.Day*day, 0).UTC().Format(time.DateOnly), Domain: d.Domain,
			SuccessfulSessions: d.Ok, FailedSessions: d.Failed})
	}
	var doms []struct {
		Domain     string
		Ok, Failed int64
	}
	if err := pol().Select("p.policy_domain AS domain, SUM(p.successful_sessions) AS ok, SUM(p.failed_sessions) AS failed").
		Group("p.policy_domain").Order("failed DESC, domain").Limit(limit).Scan(&doms).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup domains: %w", err)
	}
	for _, d := range doms {
		out.Domains = append(out.Domains, RollupDomain{Domain: d.Domain, SuccessfulSessions: d.Ok, FailedSessions: d.Failed, FailureRate: rate(d.Ok, d.Failed)})
	}
	if err := fail().Select("x0.result_type AS result_type, SUM(x0.failed_session_count) AS failed_sessions").
		Group("x0.result_type").Order("failed_sessions DESC, result_type").Limit(limit).Scan(&out.FailureTypes).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup failure types: %w", err)
	}
	if err := fail().Where("x0.receiving_mx_hostname <> ''").Select("x0.receiving_mx_hostname AS receiving_mx_hostname, SUM(x0.failed_session_count) AS failed_sessions").
		Group("x0.receiving_mx_hostname").Order("failed_sessions DESC, receiving_mx_hostname").Limit(limit).Scan(&out.TopMXHosts).Error; err != nil {
		return out, fmt.Errorf("tlsrpt: rollup MX hosts: %w", err)
	}
	return out, nil
}
