package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
)

// reportCols are the reports columns saveParsedPG writes after ingest_id, in order.
var reportCols = []string{"org_name", "org_key", "email", "extra_contact_info", "report_id", "domain",
	"date_begin", "date_end", "version", "namespace", "generator", "errors", "policy_p", "policy_sp", "policy_np",
	"policy_adkim", "policy_aspf", "policy_pct", "policy_fo", "policy_testing", "policy_discovery_method",
	"record_count", "message_count", "warnings", "created_at"}

// recordTypes cast the VALUES list: PostgreSQL cannot infer parameter types inside it.
var recordTypes = []string{"text", "bytea", "bigint", "text", "text", "text", "text", "text", "text", "text", "text", "text"}

// maxParams keeps one statement under PostgreSQL's 65,535 bind parameters.
const maxParams = 60000

// saveParsedPG stores complete reports with as few statements as the parameter limit allows
// (one for nearly every file): each report row, its records and its link to the file are
// chained data-modifying CTEs. Round trips and per-statement work bound ingestion throughput on
// PostgreSQL, and the generic path needs four statements per report. Reports whose identity
// already exists insert nothing there and are linked to the existing report afterwards.
//
// fin, when set, finishes the file in the same statement if every report is new; that is only
// tried when all reports fit one statement.
func (s *Store) saveParsedPG(ctx context.Context, rows []Report, reps []Parsed, fin *Outcome) ([]Saved, bool, error) {
	out := make([]Saved, len(rows))
	finished := false
	for start := 0; start < len(rows); {
		end, params := start, 6
		for end < len(rows) && (end == start || params+len(reportCols)+len(reps[end].Records)*len(recordTypes) <= maxParams) {
			params += len(reportCols) + len(reps[end].Records)*len(recordTypes)
			end++
		}
		f := fin
		if start != 0 || end != len(rows) {
			f = nil
		}
		var err error
		if finished, err = s.saveChunkPG(ctx, rows[start:end], reps[start:end], out[start:end], f); err != nil {
			return nil, false, fmt.Errorf("store: save reports of ingest %d: %w", rows[0].IngestID, err)
		}
		start = end
	}
	return out, finished, nil
}

func (s *Store) saveChunkPG(ctx context.Context, rows []Report, reps []Parsed, out []Saved, fin *Outcome) (bool, error) {
	args := []any{rows[0].IngestID}
	var buf []byte
	for i, r := range rows {
		args = append(args, r.OrgName, r.OrgKey, r.Email, r.ExtraContactInfo, r.ReportID, r.Domain,
			r.DateBegin, r.DateEnd, r.Version, r.Namespace, r.Generator, r.Errors, r.PolicyP, r.PolicySP,
			r.PolicyNP, r.PolicyADKIM, r.PolicyASPF, r.PolicyPct, r.PolicyFO, r.PolicyTesting,
			r.PolicyDiscoveryMethod, r.RecordCount, r.MessageCount, r.Warnings, r.CreatedAt)
		for _, rec := range reps[i].Records {
			args = appendRecord(args, rec, &buf)
		}
	}
	if fin != nil {
		now := time.Now().UTC()
		args = append(args, fin.Status, fin.Reason, fin.ReportCount, now)
	}
	db := s.async.WithContext(ctx)
	got, err := s.rawDB(ctx).QueryContext(ctx, chunkSQL(reps, fin != nil), args...)
	if err != nil {
		return false, err
	}
	inserted := make([]bool, len(rows))
	finished := false
	for got.Next() {
		var i int
		var id int64
		if err := got.Scan(&i, &id); err != nil {
			got.Close()
			return false, err
		}
		if i < 0 {
			finished = true
			continue
		}
		out[i], inserted[i] = Saved{ReportID: id}, true
	}
	if err := got.Close(); err != nil {
		return false, err
	}
	for i := range rows {
		if !inserted[i] {
			saved, err := linkExisting(db, rows[i])
			if err != nil {
				return false, err
			}
			out[i] = saved
		}
	}
	return finished, nil
}

// chunkSQL chains, per report i: r<i> inserts the report (nothing on an identity conflict),
// c<i> its records, l<i> the file link; with fin, a last CTE finishes the file when every r<i>
// inserted (its parameters follow the reports'). Rows out: (i, report id) per new report, and
// (-1, 0) when the file was finished.
func chunkSQL(reps []Parsed, fin bool) string {
	var b strings.Builder
	p := 2
	param := func(cast string) {
		b.WriteString("$" + strconv.Itoa(p) + cast)
		p++
	}
	b.WriteString("WITH ")
	for i, r := range reps {
		n := strconv.Itoa(i)
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("r" + n + " AS (INSERT INTO reports (ingest_id, " + strings.Join(reportCols, ", ") + ") VALUES ($1")
		for range reportCols {
			b.WriteByte(',')
			param("")
		}
		b.WriteString(") ON CONFLICT DO NOTHING RETURNING id)")
		if len(r.Records) > 0 {
			b.WriteString(", c" + n + " AS (INSERT INTO records (report_id, source_ip, ip, count, disposition, dkim, spf, header_from, " +
				"envelope_from, envelope_to, reasons, dkim_results, spf_results) SELECT r" + n + ".id, v.* FROM r" + n + " CROSS JOIN (VALUES ")
			writeRecordValues(&b, r.Records, param)
			b.WriteString(") AS v)")
		}
		b.WriteString(", l" + n + " AS (INSERT INTO ingest_reports (ingest_id, report_id, duplicate) SELECT $1::bigint, id, false FROM r" + n + ")")
	}
	var all strings.Builder
	for i := range reps {
		n := strconv.Itoa(i)
		if i > 0 {
			all.WriteString(" UNION ALL")
		}
		all.WriteString(" SELECT " + n + ", id FROM r" + n)
	}
	if fin {
		st, reason, count, now := "$"+strconv.Itoa(p), "$"+strconv.Itoa(p+1), "$"+strconv.Itoa(p+2), "$"+strconv.Itoa(p+3)
		b.WriteString(", fin AS (UPDATE ingests SET status = " + st + "::text, error = " + reason + "::text, report_count = " + count +
			"::integer, updated_at = " + now + "::timestamptz, processed_at = " + now + "::timestamptz WHERE id = $1::bigint AND status = 'pending'" +
			" AND (SELECT count(*) FROM (" + all.String() + ") x) = " + strconv.Itoa(len(reps)) + " RETURNING 1)")
	}
	b.WriteString(all.String())
	if fin {
		b.WriteString(" UNION ALL SELECT -1, 0 FROM fin")
	}
	return b.String()
}

func writeRecordValues(b *strings.Builder, recs []dmarc.Record, param func(string)) {
	for i := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c, t := range recordTypes {
			if c > 0 {
				b.WriteByte(',')
			}
			param("::" + t)
		}
		b.WriteByte(')')
	}
}
