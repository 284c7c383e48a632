package rollup_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// Reports handed to the applier with their records (what the after-store hook gets) are
// applied from the stage, and the rollups are exactly those one Apply of every report from the
// database writes: whatever part of them is handed over, a report or a file handed twice,
// reports that do not all fit the stage, and reports applied elsewhere first (then the pass
// reads them all back).
func TestApplierStageEqualsOneApply(t *testing.T) {
	t.Parallel()
	every := func(_ int, ins []store.NewReport) []store.NewReport { return ins }
	cases := []struct {
		name    string
		hand    func(file int, ins []store.NewReport) []store.NewReport
		twice   bool // every file is handed over a second time (a retried task)
		maxHeld int  // 0: the default
		before  int  // reports applied from the database before the files are handed over
		// staged is what rollup.Staged must be, given the distinct reports handed over.
		staged func(handed int) (min, max int)
	}{
		{name: "every report", hand: every, staged: func(h int) (int, int) { return h, h }},
		{name: "some files without, some in part, a report twice", hand: func(file int, ins []store.NewReport) []store.NewReport {
			switch file % 3 {
			case 0:
				return nil
			case 1:
				return ins[:len(ins)/2]
			}
			return append(ins, ins[0])
		}, staged: func(h int) (int, int) { return h, h }},
		{name: "files handed twice", hand: every, twice: true, staged: func(h int) (int, int) { return h, h }},
		{name: "more than the stage holds", hand: every, maxHeld: 300, staged: func(h int) (int, int) { return 1, h - 1 }},
		{name: "some applied before", hand: every, before: 10, staged: func(int) (int, int) { return 0, 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testenv.Run(t, func(t *testing.T, b testenv.Backend) {
				t.Parallel()
				st := b.Store(t)
				ctx := context.Background()
				ingests, ids, inserted := loadInserted(t, st, synth.Config{Seed: 31, Domains: 4, Sources: 80, Reporters: 5, Days: 60,
					Reports: 400, RecordsPerReport: 4, MultiDayShare: 0.2, End: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)})
				if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
					t.Fatal(err)
				}
				once := snapshot(t, st)
				reset(t, st)
				if tc.before > 0 {
					if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids[:tc.before]); err != nil {
						t.Fatal(err)
					}
				}

				r := rollup.New(st, nil, testenv.Logger())
				if tc.maxHeld > 0 {
					rollup.SetMaxHeld(r, tc.maxHeld)
				}
				a := r.NewApplier()
				a.SetGap(time.Hour) // one pass, at the Flush
				runApplier(t, a)
				handed := map[int64]bool{}
				for round := 0; round < 1+btoi(tc.twice); round++ {
					for i, ing := range ingests {
						ins := tc.hand(i, inserted[i])
						for _, nr := range ins {
							handed[nr.ID] = true
						}
						if err := a.Add(ctx, ing, ins); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := a.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if got := appliedCount(t, st); got != int64(len(ids)) {
					t.Fatalf("after Flush %d reports are rolled up, want %d", got, len(ids))
				}
				if got := snapshot(t, st); got != once {
					t.Fatalf("the stage gave other rollups than one apply:\n%s", firstDiff(got, once))
				}
				lo, hi := tc.staged(len(handed))
				if got := rollup.Staged(a); got < lo || got > hi {
					t.Fatalf("%d reports applied from the stage, want %d to %d (of %d handed over)", got, lo, hi, len(handed))
				}
			})
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The real corpus through the ingest pipeline, as an import and a worker would run it side by
// side (two services, each with its own applier as its after-store hook, batches interleaved),
// writes exactly the rollups one Apply of every stored report from the database writes: the
// stage covers complete and streamed reports, copies of a report under a new id, and byte
// variants of a file whose reports are duplicates.
func TestIngestHookStageEqualsOneApply(t *testing.T) {
	t.Parallel()
	dir, entries := corpus.ForTest(t)
	var files []ingest.File
	for _, e := range entries {
		if e.Kind != "aggregate" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ingest.File{Name: filepath.Base(e.Path), Source: "test", Data: data})
		if e.Compression == "none" && len(e.Records) == 1 {
			// The same records under another report id, and the same report in other bytes.
			files = append(files,
				ingest.File{Name: "copy-" + filepath.Base(e.Path), Source: "test", Data: bytes.Replace(data, []byte("</report_id>"), []byte("-copy</report_id>"), 1)},
				ingest.File{Name: "dup-" + filepath.Base(e.Path), Source: "test", Data: append(slices.Clone(data), '\n')})
		}
	}
	// Long reports, streamed on both backends: one the hook gets whole, one past its bound.
	files = append(files, ingest.File{Name: "long.xml", Source: "test", Data: longReport("long-1", 12_000)},
		ingest.File{Name: "longer.xml", Source: "test", Data: longReport("long-2", 25_000)})
	lim := ingest.Limits{FileBytes: 50 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		var ids []int64
		for start := 0; start < len(files); start += 16 {
			res, err := ingest.New(st, nil, nil, lim, testenv.Logger()).AcceptBatch(ctx, files[start:min(start+16, len(files))])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Status == ingest.Accepted {
					ids = append(ids, r.IngestID)
				}
			}
		}
		var appliers []*rollup.Applier
		var wg sync.WaitGroup
		for p := range 2 {
			a := rollup.New(st, nil, testenv.Logger()).NewApplier()
			runApplier(t, a)
			appliers = append(appliers, a)
			svc := ingest.New(st, nil, nil, lim, testenv.Logger())
			svc.OnNewReports(a.Add)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for start := 8 * p; start < len(ids); start += 16 {
					if _, err := svc.ProcessBatch(ctx, ids[start:min(start+8, len(ids))]); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		staged := 0
		for _, a := range appliers {
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			staged += rollup.Staged(a)
		}
		var reports []int64
		if err := st.DB().Raw("SELECT id FROM reports ORDER BY id").Scan(&reports).Error; err != nil {
			t.Fatal(err)
		}
		if got := appliedCount(t, st); got != int64(len(reports)) || len(reports) < 100 {
			t.Fatalf("after Flush %d of %d stored reports are rolled up", got, len(reports))
		}
		if staged < len(reports)/2 {
			t.Fatalf("%d of %d reports applied from the stage, want most", staged, len(reports))
		}
		piped := snapshot(t, st)
		reset(t, st)
		if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, reports); err != nil {
			t.Fatal(err)
		}
		if once := snapshot(t, st); piped != once {
			t.Fatalf("the pipeline's stages gave other rollups than one apply:\n%s", firstDiff(piped, once))
		}
	})
}

// longReport is an aggregate report of n records over two days, from sources that repeat, with
// mixed outcomes.
func longReport(id string, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><feedback><report_metadata><org_name>Long.Example</org_name>`+
		`<email>dmarc@long.example</email><report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704239999</end></date_range>`+
		`</report_metadata><policy_published><domain>example.com</domain><p>quarantine</p><pct>100</pct></policy_published>`, id)
	verdict := []string{"pass", "fail"}
	for i := range n {
		fmt.Fprintf(&b, `<record><row><source_ip>198.51.%d.%d</source_ip><count>%d</count><policy_evaluated><disposition>%s</disposition>`+
			`<dkim>%s</dkim><spf>%s</spf></policy_evaluated></row><identifiers><header_from>%s</header_from></identifiers>`+
			`<auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>`,
			i/256%8, i%256, 1+i%5, []string{"none", "quarantine"}[i%7/6], verdict[i%3/2], verdict[i%2], []string{"example.com", "sub.example.com"}[i%11/10])
	}
	b.WriteString(`</feedback>`)
	return b.Bytes()
}

// A stage that refuses a report for want of room ends the spacing between passes: the pass
// comes without waiting for the gap or a Flush, so later reports are staged again rather than
// read back.
func TestApplierFullStageEndsGap(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, _, inserted := loadInserted(t, st, synth.Config{Seed: 32, Domains: 2, Sources: 40, Reporters: 3, Days: 30,
			Reports: 200, RecordsPerReport: 4, End: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)})
		for _, maxHeld := range []int{0, 300} { // 0: the default, which these reports do not fill
			r := rollup.New(st, nil, testenv.Logger())
			if maxHeld > 0 {
				rollup.SetMaxHeld(r, maxHeld)
			}
			a := r.NewApplier()
			a.SetGap(time.Hour)
			stop := runApplier(t, a)
			for i, ing := range ingests {
				if err := a.Add(ctx, ing, inserted[i]); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for rollup.Passes(a) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got, want := rollup.Passes(a) > 0, maxHeld > 0; got != want {
				t.Fatalf("maxHeld %d: a pass before the gap or a Flush: %v, want %v", maxHeld, got, want)
			}
			stop()
			reset(t, st)
		}
	})
}
