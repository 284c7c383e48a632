package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/vigilhq/vigil/pkg/dmarc"
)

// saveFilesSQL stores the complete reports of several files in one statement whose text never
// changes (every value travels in an array parameter), so PostgreSQL parses and plans it once
// per connection, and finishes every file whose reports all turned out new. Round trips and
// per-statement work bound ingestion on PostgreSQL: the alternative is four statements per
// report and two more per file.
//
// inp holds the reports in the order to insert them (ord); r inserts them, skipping identities
// already stored; m maps each inserted row back to its ord by identity (the caller never sends
// one identity twice); c inserts the records of inserted reports, l links them to their files;
// fin finishes each file whose count of inserted reports is the count it sent (n). Rows out:
// (0, ord, report id) per new report and (1, 0, ingest id) per finished file.
const saveFilesSQL = `WITH inp AS (
	SELECT * FROM unnest($1::int4[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
		$17::text[], $18::text[], $19::text[], $20::int4[], $21::text[], $22::text[], $23::text[], $24::int4[], $25::int8[],
		$26::text[], $27::timestamptz[])
	AS t(ord, ingest_id, org_name, org_key, email, extra_contact_info, report_id, domain, date_begin, date_end, version,
		namespace, generator, errors, policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct, policy_fo,
		policy_testing, policy_discovery_method, record_count, message_count, warnings, created_at)
), r AS (
	INSERT INTO reports (ingest_id, org_name, org_key, email, extra_contact_info, report_id, domain, date_begin, date_end,
		version, namespace, generator, errors, policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct, policy_fo,
		policy_testing, policy_discovery_method, record_count, message_count, warnings, created_at)
	SELECT ingest_id, org_name, org_key, email, extra_contact_info, report_id, domain, date_begin, date_end,
		version, namespace, generator, errors, policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct, policy_fo,
		policy_testing, policy_discovery_method, record_count, message_count, warnings, created_at
	FROM inp ORDER BY ord
	ON CONFLICT DO NOTHING
	RETURNING id, ingest_id, org_key, report_id, domain, date_begin, date_end
), m AS (
	SELECT inp.ord, r.id, r.ingest_id FROM r JOIN inp USING (org_key, report_id, domain, date_begin, date_end)
), c AS (
	INSERT INTO records (report_id, source_ip, ip, count, disposition, dkim, spf, header_from, envelope_from, envelope_to,
		reasons, dkim_results, spf_results)
	SELECT m.id, v.source_ip, v.ip, v.count, v.disposition, v.dkim, v.spf, v.header_from, v.envelope_from, v.envelope_to,
		v.reasons, v.dkim_results, v.spf_results
	FROM unnest($28::int4[], $29::text[], $30::bytea[], $31::int8[], $32::text[], $33::text[], $34::text[], $35::text[],
		$36::text[], $37::text[], $38::text[], $39::text[], $40::text[])
		AS v(ord, source_ip, ip, count, disposition, dkim, spf, header_from, envelope_from, envelope_to, reasons,
			dkim_results, spf_results)
	JOIN m ON m.ord = v.ord
), l AS (
	INSERT INTO ingest_reports (ingest_id, report_id, duplicate) SELECT ingest_id, id, false FROM m
), fin AS (
	UPDATE ingests SET status = f.status, error = f.reason, report_count = f.report_count, updated_at = $46, processed_at = $46
	FROM unnest($41::bigint[], $42::text[], $43::text[], $44::int4[], $45::int4[]) AS f(id, status, reason, report_count, n)
	WHERE ingests.id = f.id AND ingests.status = 'pending' AND f.n = (SELECT count(*) FROM m WHERE m.ingest_id = f.id)
	RETURNING ingests.id
)
SELECT 0, ord, id FROM m UNION ALL SELECT 1, 0, id FROM fin`

// identity is a report's identity key (the reports_identity constraint).
type identity struct {
	orgKey, reportID, domain string
	begin, end               time.Time
}

func identityOf(r *Report) identity {
	return identity{r.OrgKey, r.ReportID, r.Domain, r.DateBegin, r.DateEnd}
}

func (a identity) compare(b identity) int {
	return cmp.Or(strings.Compare(a.orgKey, b.orgKey), strings.Compare(a.reportID, b.reportID),
		strings.Compare(a.domain, b.domain), a.begin.Compare(b.begin), a.end.Compare(b.end))
}

// pgReport is one report of a saveFilesPG call: where it came from and its row.
type pgReport struct {
	file, idx int
	row       Report
}

// saveFilesPG is SaveFiles on PostgreSQL. Reports are inserted in identity order, so two
// statements racing on the same reports wait for each other instead of deadlocking; a report
// whose identity appears twice in the call is sent once and the repeat linked afterwards.
func (s *Store) saveFilesPG(ctx context.Context, files []FileReports, rows [][]Report) ([][]Saved, []bool, error) {
	send := sortedUnique(rows) // a repeat is linked below, once the first is stored
	args := reportArgs(send)
	args = append(args, recordArgs(files, send)...)
	args = append(args, finishArgs(files, rows)...)
	args = append(args, time.Now().UTC())

	saved := make([][]Saved, len(files))
	inserted := make([][]bool, len(files))
	for i := range files {
		saved[i] = make([]Saved, len(rows[i]))
		inserted[i] = make([]bool, len(rows[i]))
	}
	finished := make([]bool, len(files))
	fileOf := make(map[int64]int, len(files))
	for i, f := range files {
		fileOf[f.IngestID] = i
	}
	got, err := s.rawDB(ctx).QueryContext(ctx, saveFilesSQL, args...)
	if err != nil {
		return nil, nil, err
	}
	for got.Next() {
		var kind, ord int
		var id int64
		if err := got.Scan(&kind, &ord, &id); err != nil {
			got.Close()
			return nil, nil, err
		}
		if kind == 1 {
			finished[fileOf[id]] = true
			continue
		}
		p := send[ord]
		saved[p.file][p.idx], inserted[p.file][p.idx] = Saved{ReportID: id, Inserted: true}, true
	}
	if err := got.Close(); err != nil {
		return nil, nil, err
	}
	// Reports already stored (by another file, or earlier in this one) are linked one by one:
	// rare, and the existing row must be found first.
	db := s.async.WithContext(ctx)
	for i := range files {
		for j := range rows[i] {
			if inserted[i][j] {
				continue
			}
			sv, err := linkExisting(db, rows[i][j])
			if err != nil {
				return nil, nil, err
			}
			saved[i][j] = sv
		}
	}
	return saved, finished, nil
}

// reportArgs are parameters $1–$27 of saveFilesSQL: one array per column.
func reportArgs(send []pgReport) []any {
	n := len(send)
	ords, pcts, recCounts := make([]int32, n), make([]*int32, n), make([]int32, n)
	ingests, msgs := make([]int64, n), make([]int64, n)
	begins, ends, created := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	text := make([][]string, 19)
	for c := range text {
		text[c] = make([]string, n)
	}
	for k, p := range send {
		r := &p.row
		ords[k], ingests[k], begins[k], ends[k], created[k] = int32(k), r.IngestID, r.DateBegin, r.DateEnd, r.CreatedAt
		recCounts[k], msgs[k] = int32(r.RecordCount), r.MessageCount
		if r.PolicyPct != nil {
			v := int32(*r.PolicyPct)
			pcts[k] = &v
		}
		for c, v := range [...]string{r.OrgName, r.OrgKey, r.Email, r.ExtraContactInfo, r.ReportID, r.Domain, r.Version,
			r.Namespace, r.Generator, r.Errors, r.PolicyP, r.PolicySP, r.PolicyNP, r.PolicyADKIM, r.PolicyASPF,
			r.PolicyFO, r.PolicyTesting, r.PolicyDiscoveryMethod, r.Warnings} {
			text[c][k] = v
		}
	}
	return []any{ords, ingests, text[0], text[1], text[2], text[3], text[4], text[5], begins, ends, text[6], text[7],
		text[8], text[9], text[10], text[11], text[12], text[13], text[14], pcts, text[15], text[16], text[17],
		recCounts, msgs, text[18], created}
}

// recordArgs are parameters $28–$40: the records of every report sent, by the report's ord.
func recordArgs(files []FileReports, send []pgReport) []any {
	n := 0
	for _, p := range send {
		n += len(files[p.file].Reports[p.idx].Records)
	}
	ords, counts, ips := make([]int32, 0, n), make([]int64, 0, n), make([][]byte, 0, n)
	text := make([][]string, 10)
	for c := range text {
		text[c] = make([]string, 0, n)
	}
	ipBuf := make([]byte, 0, 16*n) // one allocation for every address
	var buf []byte
	for k, p := range send {
		for _, rec := range files[p.file].Reports[p.idx].Records {
			addr := rec.SourceIP.Unmap().WithZone("")
			a16 := RecordIP(addr)
			ipBuf = append(ipBuf, a16[:]...)
			ords, counts, ips = append(ords, int32(k)), append(counts, rec.Count), append(ips, ipBuf[len(ipBuf)-16:len(ipBuf):len(ipBuf)])
			buf = appendReasons(buf[:0], rec.Reasons)
			reasons := string(buf)
			buf = appendDKIM(buf[:0], rec.DKIMResults)
			dkimRes := string(buf)
			buf = appendSPF(buf[:0], rec.SPFResults)
			for c, v := range [...]string{addr.String(), rec.Disposition, rec.DKIM, rec.SPF, rec.HeaderFrom, rec.EnvelopeFrom,
				rec.EnvelopeTo, reasons, dkimRes, string(buf)} {
				text[c] = append(text[c], v)
			}
		}
	}
	return []any{ords, text[0], ips, counts, text[1], text[2], text[3], text[4], text[5], text[6], text[7], text[8], text[9]}
}

// finishArgs are parameters $41–$45: the outcome of each file to finish and how many reports it
// sent (repeats included, so a file with a repeat is never finished here).
func finishArgs(files []FileReports, rows [][]Report) []any {
	var ids []int64
	var status, reason []string
	var counts, sent []int32
	for i, f := range files {
		if f.Outcome == nil {
			continue
		}
		ids, status, reason = append(ids, f.IngestID), append(status, f.Outcome.Status), append(reason, f.Outcome.Reason)
		counts, sent = append(counts, int32(f.Outcome.ReportCount)), append(sent, int32(len(rows[i])))
	}
	return []any{ids, status, reason, counts, sent}
}

// saveReportPG is SaveReport on PostgreSQL: the records of a long report go in with COPY,
// streamed from the parser, in one transaction with the report row and its link. COPY costs
// PostgreSQL far less per row than a multi-row INSERT, and needs no batches in memory.
func (s *Store) saveReportPG(ctx context.Context, ingestID int64, h *dmarc.Report, head []dmarc.Record, next func() (dmarc.Record, error), warnings func() []string) (out Saved, err error) {
	conn, err := s.rawDB(ctx).Conn(ctx)
	if err != nil {
		return Saved{}, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		tx, err := c.Conn().Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		if out, err = saveReportTx(ctx, tx, ingestID, h, head, next, warnings); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	return out, err
}

func saveReportTx(ctx context.Context, tx pgx.Tx, ingestID int64, h *dmarc.Report, head []dmarc.Record, next func() (dmarc.Record, error), warnings func() []string) (Saved, error) {
	rep := ReportRow(ingestID, h)
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO reports (ingest_id, `+strings.Join(reportCols, ", ")+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
		ON CONFLICT DO NOTHING RETURNING id`,
		rep.IngestID, rep.OrgName, rep.OrgKey, rep.Email, rep.ExtraContactInfo, rep.ReportID, rep.Domain,
		rep.DateBegin, rep.DateEnd, rep.Version, rep.Namespace, rep.Generator, rep.Errors, rep.PolicyP, rep.PolicySP,
		rep.PolicyNP, rep.PolicyADKIM, rep.PolicyASPF, rep.PolicyPct, rep.PolicyFO, rep.PolicyTesting,
		rep.PolicyDiscoveryMethod, 0, int64(0), rep.Warnings, rep.CreatedAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Already stored: still read to the end, so a copy broken further down fails as a broken file.
		if err := drain(next); err != nil {
			return Saved{}, err
		}
		var existing, owner int64
		if err := tx.QueryRow(ctx, `SELECT id, ingest_id FROM reports WHERE org_key = $1 AND report_id = $2 AND domain = $3
			AND date_begin = $4 AND date_end = $5`, rep.OrgKey, rep.ReportID, rep.Domain, rep.DateBegin, rep.DateEnd).Scan(&existing, &owner); err != nil {
			return Saved{}, fmt.Errorf("find existing report: %w", err)
		}
		out := Saved{ReportID: existing, Duplicate: owner != ingestID}
		_, err := tx.Exec(ctx, `INSERT INTO ingest_reports (ingest_id, report_id, duplicate) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, ingestID, out.ReportID, out.Duplicate)
		return out, err
	}
	if err != nil {
		return Saved{}, fmt.Errorf("insert report: %w", err)
	}
	src := &recordSource{head: head, next: next, reportID: id}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"records"}, recordColNames, src); err != nil {
		if src.err != nil {
			return Saved{}, src.err // the parser's error, not COPY's account of it
		}
		return Saved{}, fmt.Errorf("copy records: %w", err)
	}
	if _, err := tx.Exec(ctx, `WITH u AS (UPDATE reports SET record_count = $2, message_count = $3, warnings = $4 WHERE id = $1)
		INSERT INTO ingest_reports (ingest_id, report_id, duplicate) VALUES ($5, $1, false) ON CONFLICT DO NOTHING`,
		id, src.n, src.msgs, jsonStrings(append(h.Warnings, warnings()...)), ingestID); err != nil {
		return Saved{}, fmt.Errorf("update report totals: %w", err)
	}
	return Saved{ReportID: id, Inserted: true}, nil
}

// reportCols are the reports columns saveReportTx writes after ingest_id, in order.
var reportCols = []string{"org_name", "org_key", "email", "extra_contact_info", "report_id", "domain",
	"date_begin", "date_end", "version", "namespace", "generator", "errors", "policy_p", "policy_sp", "policy_np",
	"policy_adkim", "policy_aspf", "policy_pct", "policy_fo", "policy_testing", "policy_discovery_method",
	"record_count", "message_count", "warnings", "created_at"}

var recordColNames = []string{"report_id", "source_ip", "ip", "count", "disposition", "dkim", "spf", "header_from",
	"envelope_from", "envelope_to", "reasons", "dkim_results", "spf_results"}

// recordSource feeds COPY from the parser: head first, then next until io.EOF.
type recordSource struct {
	head     []dmarc.Record
	next     func() (dmarc.Record, error)
	reportID int64
	n        int
	msgs     int64
	row      []any
	buf      []byte
	err      error
}

func (s *recordSource) Next() bool {
	var r dmarc.Record
	if s.n < len(s.head) {
		r = s.head[s.n]
	} else {
		var err error
		if r, err = s.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return false
		}
	}
	if r.Count > 0 && s.msgs > (1<<63-1)-r.Count {
		s.err = fmt.Errorf("message total of report overflows 64 bits")
		return false
	}
	s.msgs += r.Count
	s.n++
	s.row = appendRecord(append(s.row[:0], s.reportID), r, &s.buf)
	return true
}

func (s *recordSource) Values() ([]any, error) { return s.row, nil }
func (s *recordSource) Err() error             { return s.err }
