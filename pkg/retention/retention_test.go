package retention_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

var now = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

type fixture struct {
	st                 *store.Store
	oldIDs, keptIDs    []int64
	oldRecords         int64
	oldFile, pendingID int64
	newFile            int64
}

// addReport stores one report of n records from its own file received at recv.
func addReport(t *testing.T, st *store.Store, name, domain string, end, recv time.Time, n int, finish bool) (ingestID, reportID int64) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(t.Name() + name))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: name + ".xml", Source: "test", Size: 1,
		ReceivedAt: recv, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	var recs []dmarc.Record
	for i := range n {
		recs = append(recs, dmarc.Record{SourceIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Count: int64(10 + i),
			Disposition: "none", DKIM: "pass", SPF: "fail", HeaderFrom: domain})
	}
	saved, err := st.SaveParsed(ctx, ing.ID, []store.Parsed{{Header: &dmarc.Report{OrgName: "Reporter", ReportID: name,
		DateBegin: end.Add(-24 * time.Hour), DateEnd: end, Policy: dmarc.Policy{Domain: domain, P: "none"}}, Records: recs}})
	if err != nil {
		t.Fatal(err)
	}
	if finish {
		if _, err := st.Finish(ctx, ing.ID, store.StatusProcessed, "", 1); err != nil {
			t.Fatal(err)
		}
	}
	return ing.ID, saved[0].ReportID
}

// load stores reports old and new for two domains (one with its own age), applies their
// rollups and writes audit entries old and new.
func load(t *testing.T, st *store.Store) fixture {
	t.Helper()
	f := fixture{st: st}
	old := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC) // past the 365 days of every domain
	for i := range 25 {                                // several batches (Batch 100: 10 reports each)
		ing, id := addReport(t, st, fmt.Sprintf("old-%d", i), "example.com", old.Add(time.Duration(i)*time.Hour), old, 2, true)
		f.oldIDs, f.oldRecords = append(f.oldIDs, id), f.oldRecords+2
		if i == 0 {
			f.oldFile = ing
		}
	}
	// Past the 30 days of short.example, within the 365 of the rest.
	_, id := addReport(t, st, "short-old", "Short.Example", now.AddDate(0, 0, -60), now.AddDate(0, 0, -60), 3, true)
	f.oldIDs, f.oldRecords = append(f.oldIDs, id), f.oldRecords+3
	var ing int64
	f.pendingID, id = addReport(t, st, "kept-pending", "example.com", now.AddDate(0, 0, -200), old, 1, false) // old file, still pending
	f.keptIDs = append(f.keptIDs, id)
	ing, id = addReport(t, st, "kept-new", "example.com", now.AddDate(0, 0, -60), now.AddDate(0, 0, -60), 2, true)
	f.newFile = ing
	f.keptIDs = append(f.keptIDs, id)
	_, id = addReport(t, st, "short-new", "short.example", now.AddDate(0, 0, -5), now.AddDate(0, 0, -5), 2, true)
	f.keptIDs = append(f.keptIDs, id)
	ctx := context.Background()
	if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, append(append([]int64{}, f.oldIDs...), f.keptIDs...)); err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{now.AddDate(-2, 0, 0), now.AddDate(-1, -1, 0), now.AddDate(0, 0, -1)} {
		if err := st.DB().Exec(`INSERT INTO audit_log (at, actor, action, outcome, target, ip, details) VALUES (?, 'a', 'test', 'success', ?, '', '{}')`,
			at, fmt.Sprint(i)).Error; err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// snapshot is every rollup table's rows, sorted, as text.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	var b strings.Builder
	for _, f := range rollup.Families {
		for _, table := range f.Tables() {
			var rows []map[string]any
			if err := st.DB().Raw(`SELECT * FROM ` + table).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			lines := make([]string, 0, len(rows))
			for _, r := range rows {
				j, _ := json.Marshal(r)
				lines = append(lines, string(j))
			}
			slices.Sort(lines)
			fmt.Fprintf(&b, "%s: %s\n", table, strings.Join(lines, " "))
		}
	}
	return b.String()
}

// rebuild empties the rollups and applies ids afresh.
func rebuild(t *testing.T, st *store.Store, ids []int64) {
	t.Helper()
	tables := []string{"rollup_applied"}
	for _, f := range rollup.Families {
		tables = append(tables, f.Tables()...)
	}
	for _, table := range tables {
		if err := st.DB().Exec("DELETE FROM " + table).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := rollup.New(st, nil, testenv.Logger()).Apply(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, st *store.Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.DB().Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// rollupRows counts the rows of every rollup table before (old) and from (kept) the start of
// the period holding day.
func rollupRows(t *testing.T, st *store.Store, day int32) (old, kept int64) {
	t.Helper()
	for _, f := range rollup.Families {
		for _, g := range f.Grains() {
			start := g.Start(day)
			old += count(t, st, `SELECT COUNT(*) FROM `+f.Table(g)+` WHERE period < ?`, start)
			kept += count(t, st, `SELECT COUNT(*) FROM `+f.Table(g)+` WHERE period >= ?`, start)
		}
	}
	return old, kept
}

func TestPurge(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		f := load(t, st)
		ctx := context.Background()
		pol := retention.Policy{Reports: 365 * 24 * time.Hour, Domains: map[string]time.Duration{"short.example": 30 * 24 * time.Hour},
			Files: 90 * 24 * time.Hour, Rollups: 100 * 24 * time.Hour, Audit: 365 * 24 * time.Hour, Batch: 100}
		svc := retention.New(retention.Deps{Store: st, Policy: pol, Log: testenv.Logger(), Now: func() time.Time { return now }})
		cutDay := rollup.DayOf(now.Add(-pol.Rollups))
		oldRows, keptRows := rollupRows(t, st, cutDay)
		if oldRows == 0 || keptRows == 0 {
			t.Fatalf("fixture: want rollup rows on both sides of the cutoff, have %d before and %d after", oldRows, keptRows)
		}
		reports, records := count(t, st, `SELECT COUNT(*) FROM reports`), count(t, st, `SELECT COUNT(*) FROM records`)

		dry, err := svc.Purge(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if r, c := count(t, st, `SELECT COUNT(*) FROM reports`), count(t, st, `SELECT COUNT(*) FROM records`); r != reports || c != records {
			t.Fatalf("the dry run deleted: reports %d → %d, records %d → %d", reports, r, records, c)
		}
		want := retention.Result{Reports: int64(len(f.oldIDs)), Records: f.oldRecords, Files: 25, RollupRows: oldRows, Audit: 2}
		if got := dry; got != (retention.Result{DryRun: true, Reports: want.Reports, Records: want.Records, Files: want.Files,
			RollupRows: want.RollupRows, Audit: want.Audit}) {
			t.Errorf("dry run = %+v, want %+v (dry)", got, want)
		}

		got, err := svc.Purge(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		// The purged reports were subtracted from the rollups before the old periods went:
		// what is left equals the kept reports' rollups without the periods before the
		// cutoff's, and the purge deleted those periods' rows of the kept reports.
		after := snapshot(t, st)
		rebuild(t, st, f.keptIDs)
		wantRows := int64(0)
		for _, fam := range rollup.Families {
			for _, g := range fam.Grains() {
				r := st.DB().Exec(`DELETE FROM `+fam.Table(g)+` WHERE period < ?`, g.Start(cutDay))
				if r.Error != nil {
					t.Fatal(r.Error)
				}
				wantRows += r.RowsAffected
			}
		}
		if wantRows == 0 || wantRows >= oldRows {
			t.Fatalf("fixture: the kept reports have %d rows before the cutoff (of %d): want some, not all", wantRows, oldRows)
		}
		want.RollupRows = wantRows
		if expect := snapshot(t, st); after != expect {
			t.Errorf("rollups after the purge differ from the kept reports' own:\n got: %s\nwant: %s", after, expect)
		}
		if got != want {
			t.Errorf("purge = %+v, want %+v", got, want)
		}
		checks := []struct {
			what string
			n    int64
			want int64
		}{
			{"old reports left", count(t, st, `SELECT COUNT(*) FROM reports WHERE id IN ?`, f.oldIDs), 0},
			{"records of old reports left", count(t, st, `SELECT COUNT(*) FROM records WHERE report_id IN ?`, f.oldIDs), 0},
			{"links of old reports left", count(t, st, `SELECT COUNT(*) FROM ingest_reports WHERE report_id IN ?`, f.oldIDs), 0},
			{"rollup claims of old reports left", count(t, st, `SELECT COUNT(*) FROM rollup_applied WHERE report_id IN ?`, f.oldIDs), 0},
			{"kept reports", count(t, st, `SELECT COUNT(*) FROM reports WHERE id IN ?`, f.keptIDs), int64(len(f.keptIDs))},
			{"records of kept reports", count(t, st, `SELECT COUNT(*) FROM records WHERE report_id IN ?`, f.keptIDs), 5},
			{"old processed file's bytes", count(t, st, `SELECT COUNT(*) FROM raw_files WHERE ingest_id = ?`, f.oldFile), 0},
			{"old processed file's row", count(t, st, `SELECT COUNT(*) FROM ingests WHERE id = ?`, f.oldFile), 1},
			{"old pending file's bytes", count(t, st, `SELECT COUNT(*) FROM raw_files WHERE ingest_id = ?`, f.pendingID), 1},
			{"new file's bytes", count(t, st, `SELECT COUNT(*) FROM raw_files WHERE ingest_id = ?`, f.newFile), 1},
			{"audit entries", count(t, st, `SELECT COUNT(*) FROM audit_log`), 1},
		}
		for _, c := range checks {
			if c.n != c.want {
				t.Errorf("%s: %d, want %d", c.what, c.n, c.want)
			}
		}
		again, err := svc.Purge(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if again != (retention.Result{}) {
			t.Errorf("a second purge deleted %+v; want nothing (idempotent)", again)
		}
	})
}

// A policy of zeros deletes nothing, however old the data.
func TestKeepForever(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		load(t, st)
		svc := retention.New(retention.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return now }})
		if svc.Policy().Enabled() {
			t.Error("an empty policy says it deletes")
		}
		got, err := svc.Purge(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if got != (retention.Result{}) {
			t.Errorf("purge with no ages = %+v, want nothing", got)
		}
	})
}
