// Package export turns the API's lists into files: CSV (streamed row by row, RFC 4180,
// formula-injection safe), XLSX (excelize's StreamWriter: typed cells, header, frozen panes,
// widths; one sheet per view in the workbook) and a PDF summary (gopdf, fonts embedded from
// bytes, vector charts, page numbers). Exports over the row limit are rendered by the
// export:render worker task into a file served for a limited time to whoever asked (or an
// admin) and deleted after its retention. Its handlers and OpenAPI fragment live here.
package export

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/store"
)

// kind is how a column's values are typed in a spreadsheet.
type kind int

const (
	kText  kind = iota // neutralised against formula injection
	kID                // digits, but text in XLSX (a 20-digit id must not become 1.2E+19)
	kInt               // a count: a number
	kFloat             // a rate: a number, empty when undefined
	kTime              // RFC 3339 UTC in CSV, a date cell in XLSX
)

// column is one field of a view; its name is the JSON field name of the list endpoint
// (DESIGN.md), nested ones dotted (policy.p).
type column struct {
	name  string
	kind  kind
	width float64 // XLSX column width in characters
}

// view is one exportable list: its columns and how to count and walk its rows under the
// common filters. A row's values are string, int64, *float64 (nil: no value) or time.Time.
type view struct {
	name  string
	cols  []column
	count func(ctx context.Context, f store.Filter) (int64, error)
	each  func(ctx context.Context, f store.Filter, emit func(row []any) error) error
	// csv, when set, writes the rows straight to a CSV writer (the records view: a million
	// rows go from the database's bytes to the file without a value per cell); it returns the
	// rows written. each stays the reference: TestCSVEqualsAPI holds the two to the API.
	csv func(ctx context.Context, f store.Filter, w *csvWriter) (int64, error)
}

// Views names the exportable lists.
var Views = []string{"reports", "records", "sources"}

func (s *Service) view(name string) (view, bool) {
	switch name {
	case "reports":
		return s.reportsView(), true
	case "records":
		return s.recordsView(), true
	case "sources":
		return s.sourcesView(), true
	}
	return view{}, false
}

var reportCols = []column{
	{"id", kID, 10}, {"ingest_id", kID, 10}, {"org_name", kText, 24}, {"email", kText, 28}, {"extra_contact_info", kText, 20},
	{"report_id", kText, 28}, {"date_begin", kTime, 20}, {"date_end", kTime, 20}, {"domain", kText, 24},
	{"policy.p", kText, 10}, {"policy.sp", kText, 10}, {"policy.np", kText, 10}, {"policy.adkim", kText, 8}, {"policy.aspf", kText, 8},
	{"policy.pct", kInt, 8}, {"policy.fo", kText, 8}, {"policy.testing", kText, 8}, {"policy.discovery_method", kText, 12},
	{"version", kText, 8}, {"namespace", kText, 16}, {"generator", kText, 16}, {"errors", kText, 20},
	{"record_count", kInt, 12}, {"message_count", kInt, 14}, {"warnings", kText, 20}, {"created_at", kTime, 20},
}

func (s *Service) reportsView() view {
	return view{name: "reports", cols: reportCols, count: s.store.CountReports,
		each: func(ctx context.Context, f store.Filter, emit func([]any) error) error {
			row := make([]any, len(reportCols))
			return s.store.EachReport(ctx, f, func(r *store.Report) error {
				var pct any
				if r.PolicyPct != nil {
					pct = int64(*r.PolicyPct)
				}
				copy(row, []any{itoa(r.ID), itoa(r.IngestID), r.OrgName, r.Email, r.ExtraContactInfo, r.ReportID, r.DateBegin.UTC(), r.DateEnd.UTC(), r.Domain,
					r.PolicyP, r.PolicySP, r.PolicyNP, r.PolicyADKIM, r.PolicyASPF, pct, r.PolicyFO, r.PolicyTesting, r.PolicyDiscoveryMethod,
					r.Version, r.Namespace, r.Generator, jsonList(r.Errors), int64(r.RecordCount), r.MessageCount, jsonList(r.Warnings), r.CreatedAt.UTC()})
				return emit(row)
			})
		}}
}

var recordCols = []column{
	{"report", kID, 10}, {"report_id", kText, 28}, {"org_name", kText, 24}, {"domain", kText, 24}, {"date_begin", kTime, 20}, {"date_end", kTime, 20},
	{"id", kID, 10}, {"source_ip", kText, 24}, {"count", kInt, 10}, {"disposition", kText, 12}, {"dkim", kText, 8}, {"spf", kText, 8},
	{"reasons", kText, 20}, {"header_from", kText, 24}, {"envelope_from", kText, 24}, {"envelope_to", kText, 24},
	{"dkim_results", kText, 40}, {"spf_results", kText, 40},
}

func (s *Service) recordsView() view {
	return view{name: "records", cols: recordCols, count: s.store.CountRecords,
		each: func(ctx context.Context, f store.Filter, emit func([]any) error) error {
			row := make([]any, len(recordCols))
			return s.store.EachRecord(ctx, f, func(r *store.RecordRow) error {
				copy(row, []any{itoa(r.ReportID), string(r.ReporterReportID), string(r.OrgName), string(r.Domain), r.DateBegin, r.DateEnd,
					itoa(r.ID), string(r.SourceIP), r.Count, string(r.Disposition), string(r.DKIM), string(r.SPF), jsonList(string(r.Reasons)),
					string(r.HeaderFrom), string(r.EnvelopeFrom), string(r.EnvelopeTo), jsonList(string(r.DKIMResults)), jsonList(string(r.SPFResults))})
				return emit(row)
			})
		},
		// The columns of recordCols, in order: ids and counts as digits, text neutralised.
		csv: func(ctx context.Context, f store.Filter, w *csvWriter) (int64, error) {
			var n int64
			err := s.store.EachRecord(ctx, f, func(r *store.RecordRow) error {
				w.int(r.ReportID)
				w.text(r.ReporterReportID, true)
				w.text(r.OrgName, true)
				w.text(r.Domain, true)
				w.time(r.DateBegin)
				w.time(r.DateEnd)
				w.int(r.ID)
				w.text(r.SourceIP, true)
				w.int(r.Count)
				w.text(r.Disposition, true)
				w.text(r.DKIM, true)
				w.text(r.SPF, true)
				w.text(jsonListBytes(r.Reasons), true)
				w.text(r.HeaderFrom, true)
				w.text(r.EnvelopeFrom, true)
				w.text(r.EnvelopeTo, true)
				w.text(jsonListBytes(r.DKIMResults), true)
				w.text(jsonListBytes(r.SPFResults), true)
				n++
				return w.end()
			})
			return n, err
		}}
}

var sourceCols = []column{
	{"source_ip", kText, 28}, {"messages", kInt, 12}, {"dmarc_pass_messages", kInt, 12}, {"dmarc_fail_messages", kInt, 12},
	{"dmarc_pass_rate", kFloat, 10}, {"dkim_pass_messages", kInt, 12}, {"spf_pass_messages", kInt, 12}, {"reporters", kInt, 10},
	{"first_seen", kText, 12}, {"last_seen", kText, 12}, {"ptr", kText, 30}, {"base_domain", kText, 20}, {"sender", kText, 20},
	{"sender_type", kText, 14}, {"asn", kInt, 10}, {"as_org", kText, 24}, {"country", kText, 8},
}

// sourcesPage is how many sources one rollup query reads while walking them all.
const sourcesPage = 5000

func (s *Service) sourcesView() view {
	return view{name: "sources", cols: sourceCols,
		count: func(ctx context.Context, f store.Filter) (int64, error) {
			q, err := s.analytics.Query(ctx, f)
			if err != nil {
				return 0, err
			}
			l, err := q.Sources(ctx, 1, 1)
			return l.Total, err
		},
		each: func(ctx context.Context, f store.Filter, emit func([]any) error) error {
			q, err := s.analytics.Query(ctx, f)
			if err != nil {
				return err
			}
			row := make([]any, len(sourceCols))
			for page := 1; ; page++ {
				l, err := q.Sources(ctx, page, sourcesPage)
				if err != nil {
					return err
				}
				for _, it := range l.Items {
					copy(row, sourceRow(it))
					if err := emit(row); err != nil {
						return err
					}
				}
				if len(l.Items) < sourcesPage || int64(page*sourcesPage) >= l.Total {
					return nil
				}
			}
		}}
}

func sourceRow(it analytics.Source) []any {
	var asn any
	if it.ASN != nil {
		asn = *it.ASN
	}
	return []any{it.SourceIP, it.Messages, it.DMARCPassMessages, it.DMARCFailMessages, it.DMARCPassRate, it.DKIMPassMessages,
		it.SPFPassMessages, it.Reporters, it.FirstSeen, it.LastSeen, str(it.PTR), str(it.BaseDomain), str(it.Sender),
		str(it.SenderType), asn, str(it.ASOrg), str(it.Country)}
}

func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func itoa(n int64) string { return fmt.Sprint(n) }

// jsonList is a stored JSON array as the API shows it: written by the store as JSON (so not
// validated again on the hot path of a million-row export), "[]" when empty.
func jsonList(s string) string {
	if s == "" {
		return "[]"
	}
	return s
}

var emptyList = []byte("[]")

func jsonListBytes(b []byte) []byte {
	if len(b) == 0 {
		return emptyList
	}
	return b
}

// stamp is the UTC timestamp in file names.
func stamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
