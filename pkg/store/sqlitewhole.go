package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// nReportCols is ingest_id and reportCols.
const nReportCols = 26

// sqliteReportChunk bounds the reports of one INSERT (26 parameters each, far below SQLite's
// 32,766).
const sqliteReportChunk = 64

// sqliteLinkChunk bounds the links of one INSERT (3 parameters each).
const sqliteLinkChunk = 1000

// sortedUnique lists a call's reports in identity order, each identity once (a repeat is
// linked to the first once that is stored). Identity order makes concurrent writers on
// PostgreSQL wait for each other instead of deadlocking; SQLite has one writer, but the same
// order keeps the two dialects' outcomes identical.
func sortedUnique(rows [][]Report) []pgReport {
	var send []pgReport
	for i := range rows {
		for j := range rows[i] {
			send = append(send, pgReport{i, j, rows[i][j]})
		}
	}
	slices.SortStableFunc(send, func(a, b pgReport) int { return identityOf(&a.row).compare(identityOf(&b.row)) })
	kept := send[:0]
	for k, p := range send {
		if k > 0 && identityOf(&p.row) == identityOf(&send[k-1].row) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// identityKey is an identity as a map key that survives a round trip through the database
// (time zones and monotonic readings dropped).
func identityKey(orgKey, reportID, domain string, begin, end time.Time) string {
	return orgKey + "\x00" + reportID + "\x00" + domain + "\x00" + strconv.FormatInt(begin.UnixNano(), 10) + "\x00" +
		strconv.FormatInt(end.UnixNano(), 10)
}

// saveFilesSQLite is SaveFiles on SQLite: one transaction with a handful of multi-row
// statements per batch (reports, their records across reports, links, outcomes) instead of
// four statements per report. SQLite parses every statement text it is given, so on small
// reports the statement count, not the rows, was the cost of saving.
func (s *Store) saveFilesSQLite(ctx context.Context, files []FileReports, rows [][]Report) ([][]Saved, []bool, error) {
	send := sortedUnique(rows)
	saved := make([][]Saved, len(files))
	inserted := make([][]bool, len(files))
	for i := range files {
		saved[i] = make([]Saved, len(rows[i]))
		inserted[i] = make([]bool, len(rows[i]))
	}
	finished := make([]bool, len(files))
	err := s.write(ctx, func(tx *gorm.DB) error {
		ids, err := s.insertReportRows(ctx, tx, send)
		if err != nil {
			return err
		}
		w := s.newRecordWriter(ctx, tx)
		var links []any
		for k, p := range send {
			id, ok := ids[k]
			if !ok {
				continue
			}
			saved[p.file][p.idx], inserted[p.file][p.idx] = Saved{ReportID: id, Inserted: true}, true
			for _, rec := range files[p.file].Reports[p.idx].Records {
				if err := w.add(id, rec); err != nil {
					return err
				}
			}
			links = append(links, files[p.file].IngestID, id, false)
		}
		if err := w.flush(); err != nil {
			return err
		}
		// In chunks: a file (an archive) may hold thousands of reports, and one statement
		// takes at most 32,766 parameters.
		for start := 0; start < len(links); start += 3 * sqliteLinkChunk {
			part := links[start:min(start+3*sqliteLinkChunk, len(links))]
			q := "INSERT INTO ingest_reports (ingest_id, report_id, duplicate) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?,?,?),", len(part)/3), ",") + " ON CONFLICT DO NOTHING"
			if err := tx.Exec(q, part...).Error; err != nil {
				return fmt.Errorf("link reports to ingests: %w", err)
			}
		}
		for i, f := range files {
			allNew := true
			for j := range rows[i] {
				if inserted[i][j] {
					continue
				}
				allNew = false
				if saved[i][j], err = linkExisting(tx, rows[i][j]); err != nil {
					return err
				}
			}
			if f.Outcome == nil || !allNew {
				continue
			}
			if finished[i], err = s.finish(ctx, tx, f.IngestID, *f.Outcome); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return saved, finished, nil
}

// insertReportRows inserts the reports whose identity is new and returns their ids by index
// in send; a report already stored gets none.
func (s *Store) insertReportRows(ctx context.Context, tx *gorm.DB, send []pgReport) (map[int]int64, error) {
	ids := make(map[int]int64, len(send))
	byKey := make(map[string]int, len(send))
	for k := range send {
		r := &send[k].row
		byKey[identityKey(r.OrgKey, r.ReportID, r.Domain, r.DateBegin, r.DateEnd)] = k
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", nReportCols), ",") + ")"
	args := make([]any, 0, sqliteReportChunk*nReportCols)
	for start := 0; start < len(send); start += sqliteReportChunk {
		part := send[start:min(start+sqliteReportChunk, len(send))]
		args = args[:0]
		for k := range part {
			r := &part[k].row
			var pct any
			if r.PolicyPct != nil {
				pct = int64(*r.PolicyPct)
			}
			args = append(args, r.IngestID, r.OrgName, r.OrgKey, r.Email, r.ExtraContactInfo, r.ReportID, r.Domain,
				r.DateBegin, r.DateEnd, r.Version, r.Namespace, r.Generator, r.Errors, r.PolicyP, r.PolicySP, r.PolicyNP,
				r.PolicyADKIM, r.PolicyASPF, pct, r.PolicyFO, r.PolicyTesting, r.PolicyDiscoveryMethod,
				int64(r.RecordCount), r.MessageCount, r.Warnings, r.CreatedAt)
		}
		q := "INSERT INTO reports (ingest_id, " + strings.Join(reportCols, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", len(part)), ",") +
			" ON CONFLICT DO NOTHING RETURNING id, org_key, report_id, domain, date_begin, date_end"
		got, err := tx.Statement.ConnPool.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("insert reports: %w", err)
		}
		for got.Next() {
			var id int64
			var orgKey, reportID, domain string
			var begin, end time.Time
			if err := got.Scan(&id, &orgKey, &reportID, &domain, &begin, &end); err != nil {
				got.Close()
				return nil, fmt.Errorf("insert reports: %w", err)
			}
			k, ok := byKey[identityKey(orgKey, reportID, domain, begin, end)]
			if !ok {
				got.Close()
				return nil, fmt.Errorf("insert reports: stored report %d matches none sent", id)
			}
			ids[k] = id
		}
		if err := got.Err(); err != nil {
			got.Close()
			return nil, fmt.Errorf("insert reports: %w", err)
		}
		if err := got.Close(); err != nil {
			return nil, fmt.Errorf("insert reports: %w", err)
		}
	}
	return ids, nil
}
