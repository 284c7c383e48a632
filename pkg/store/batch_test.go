package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

func newFile(data string) store.NewFile {
	sum := sha256.Sum256([]byte(data))
	return store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: data + ".xml", Source: "test", Size: int64(len(data)),
		ReceivedAt: time.Now(), Encoding: "identity", Data: []byte(data)}
}

// The same bytes twice in a batch, or stored before, are one ingest; the others are created
// with their originals, and ClaimMany returns those still pending.
func TestCreateIngestsAndClaimMany(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		old := newIngest(t, st, "old")
		got, err := st.CreateIngests(ctx, []store.NewFile{newFile("b"), newFile("a"), newFile("old"), newFile("b"), newFile("c")})
		if err != nil {
			t.Fatal(err)
		}
		created := []bool{true, true, false, false, true}
		for i, g := range got {
			if g.Created != created[i] || g.ID == 0 {
				t.Errorf("file %d: %+v, want created=%v", i, g, created[i])
			}
		}
		if got[2].ID != old || got[3].ID != got[0].ID {
			t.Errorf("duplicates point at %d and %d, want %d and %d", got[2].ID, got[3].ID, old, got[0].ID)
		}
		if _, err := st.Finish(ctx, got[4].ID, store.StatusFailed, "x", 0); err != nil {
			t.Fatal(err)
		}
		claimed, err := st.ClaimMany(ctx, []int64{got[4].ID, got[1].ID, got[0].ID, 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]string{got[0].ID: "b", got[1].ID: "a"}
		if len(claimed) != len(want) {
			t.Fatalf("claimed %+v, want ingests %v", claimed, want)
		}
		for _, c := range claimed {
			if string(c.Raw.Data) != want[c.Ingest.ID] || c.Ingest.Filename != want[c.Ingest.ID]+".xml" || c.Ingest.SizeBytes != 1 {
				t.Errorf("claimed %+v", c)
			}
			if ing, _ := st.GetIngest(ctx, c.Ingest.ID); ing.Attempts != 1 {
				t.Errorf("ingest %d: %d attempts, want 1", c.Ingest.ID, ing.Attempts)
			}
		}
	})
}

// Several files in one SaveFiles: a report two files carry is stored once and the second file
// linked as a duplicate and left pending; the others are finished; a file with no reports and
// an outcome is simply finished.
func TestSaveFiles(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		f1, f2, f3 := newIngest(t, st, "f1"), newIngest(t, st, "f2"), newIngest(t, st, "f3")
		hs, rs := report("org", "shared", "example.com", day, "192.0.2.1", "192.0.2.2")
		h1, r1 := report("org", "one", "example.com", day, "192.0.2.3")
		h2, r2 := report("org", "two", "example.com", day)
		out := func(n int) *store.Outcome { return &store.Outcome{Status: store.StatusProcessed, ReportCount: n} }
		saved, finished, err := st.SaveFiles(ctx, []store.FileReports{
			{IngestID: f1, Reports: []store.Parsed{{Header: h1, Records: r1}, {Header: hs, Records: rs}}, Outcome: out(2)},
			{IngestID: f2, Reports: []store.Parsed{{Header: hs, Records: rs}, {Header: h2, Records: r2}}, Outcome: out(2)},
			{IngestID: f3, Outcome: &store.Outcome{Status: store.StatusFailed, Reason: "nothing"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if finished[0] != true || finished[1] != false || finished[2] != true {
			t.Errorf("finished = %v, want [true false true]", finished)
		}
		if saved[0][1].Duplicate || !saved[1][0].Duplicate || saved[1][0].ReportID != saved[0][1].ReportID || saved[1][1].Duplicate {
			t.Errorf("saved = %+v", saved)
		}
		for _, c := range []struct {
			id     int64
			status string
			links  int
		}{{f1, store.StatusProcessed, 2}, {f2, store.StatusPending, 2}, {f3, store.StatusFailed, 0}} {
			ing, _ := st.GetIngest(ctx, c.id)
			ids, _ := st.IngestReportIDs(ctx, c.id)
			if ing.Status != c.status || len(ids) != c.links {
				t.Errorf("ingest %d: %s with %d reports, want %s with %d", c.id, ing.Status, len(ids), c.status, c.links)
			}
		}
		if r, err := st.GetReport(ctx, saved[0][1].ReportID); err != nil || r.RecordCount != 2 || r.MessageCount != 3 {
			t.Errorf("shared report %+v %v", r, err)
		}
		if _, total, _ := st.ListRecords(ctx, saved[0][1].ReportID, store.Filter{}, store.Page{Number: 1, Size: 1}); total != 2 {
			t.Errorf("shared report has %d record rows, want 2", total)
		}
	})
}

// On PostgreSQL a value the database refuses (a NUL byte in text) fails the whole call and
// stores nothing of any file in it: the pipeline then stores the files one by one.
func TestSaveFilesAtomic(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		if !b.Real() {
			t.Skip("SQLite stores NUL bytes in text")
		}
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		good, bad := newIngest(t, st, "good"), newIngest(t, st, "bad")
		hg, rg := report("org", "good", "example.com", day, "192.0.2.1")
		hb, rb := report("org", "bad\x00", "example.com", day, "192.0.2.1")
		_, _, err := st.SaveFiles(ctx, []store.FileReports{
			{IngestID: good, Reports: []store.Parsed{{Header: hg, Records: rg}}, Outcome: &store.Outcome{Status: store.StatusProcessed, ReportCount: 1}},
			{IngestID: bad, Reports: []store.Parsed{{Header: hb, Records: rb}}, Outcome: &store.Outcome{Status: store.StatusProcessed, ReportCount: 1}},
		})
		if err == nil {
			t.Fatal("SaveFiles with a NUL byte succeeded")
		}
		if _, total, _ := st.ListReports(ctx, store.Filter{}, store.Page{Number: 1, Size: 1}); total != 0 {
			t.Fatalf("%d reports stored by a failed call", total)
		}
		if ing, _ := st.GetIngest(ctx, good); ing.Status != store.StatusPending {
			t.Fatalf("good file %s after a failed call", ing.Status)
		}
	})
}

// A batch larger than one statement's chunk of reports and of records (SQLite writes reports
// 64 at a time and records of several reports in one INSERT): every report gets its own
// records, whatever chunk they travelled in.
func TestSaveFilesManyReports(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		var files []store.FileReports
		want := map[[2]int]int{} // (file, report) → records
		for f := range 3 {
			fr := store.FileReports{IngestID: newIngest(t, st, fmt.Sprintf("many-%d", f))}
			for r := range 55 {
				var ips []string
				for k := range (f*55 + r) % 8 {
					ips = append(ips, fmt.Sprintf("10.%d.%d.%d", f, r, k))
				}
				h, recs := report("org", fmt.Sprintf("r-%d-%d", f, r), "example.com", day.Add(time.Duration(r)*time.Hour), ips...)
				fr.Reports = append(fr.Reports, store.Parsed{Header: h, Records: recs})
				want[[2]int{f, r}] = len(ips)
			}
			fr.Outcome = &store.Outcome{Status: store.StatusProcessed, ReportCount: len(fr.Reports)}
			files = append(files, fr)
		}
		saved, finished, err := st.SaveFiles(ctx, files)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for f := range files {
			if !finished[f] {
				t.Errorf("file %d not finished", f)
			}
			for r, sv := range saved[f] {
				if sv.ReportID == 0 || sv.Duplicate || seen[sv.ReportID] {
					t.Fatalf("file %d report %d saved as %+v (ids seen before: %v)", f, r, sv, seen[sv.ReportID])
				}
				seen[sv.ReportID] = true
				rep, err := st.GetReport(ctx, sv.ReportID)
				if err != nil || rep.ReportID != fmt.Sprintf("r-%d-%d", f, r) || rep.RecordCount != want[[2]int{f, r}] {
					t.Errorf("file %d report %d: stored %+v %v", f, r, rep, err)
				}
				recs, total, err := st.ListRecords(ctx, sv.ReportID, store.Filter{}, store.Page{Number: 1, Size: 20})
				if err != nil || int(total) != want[[2]int{f, r}] {
					t.Errorf("file %d report %d: %d record rows (%v), want %d", f, r, total, err, want[[2]int{f, r}])
				}
				for _, rec := range recs {
					if !strings.HasPrefix(rec.SourceIP, fmt.Sprintf("10.%d.%d.", f, r)) {
						t.Errorf("file %d report %d holds record of %s", f, r, rec.SourceIP)
					}
				}
			}
		}
	})
}

// One file holding more reports than one statement takes parameters for (an archive of
// thousands of small reports): every report is stored and linked to the file.
func TestSaveFilesArchiveOfManyReports(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		const n = 11000 // 3 link parameters each: past SQLite's 32,766 in one statement
		f := store.FileReports{IngestID: newIngest(t, st, "archive")}
		for r := range n {
			h, recs := report("org", fmt.Sprintf("a-%d", r), "example.com", day)
			f.Reports = append(f.Reports, store.Parsed{Header: h, Records: recs})
		}
		f.Outcome = &store.Outcome{Status: store.StatusProcessed, ReportCount: n}
		if _, finished, err := st.SaveFiles(ctx, []store.FileReports{f}); err != nil || !finished[0] {
			t.Fatalf("SaveFiles: finished %v, %v", finished, err)
		}
		if ids, err := st.IngestReportIDs(ctx, f.IngestID); err != nil || len(ids) != n {
			t.Errorf("file linked to %d reports (%v), want %d", len(ids), err, n)
		}
	})
}
