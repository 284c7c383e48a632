package rollup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// load stores n synthetic reports in files of 40 and returns the ingest ids and report ids.
func load(t *testing.T, st *store.Store, seed uint64, n int) (ingests, reports []int64) {
	t.Helper()
	return loadWith(t, st, synth.Config{Seed: seed, Domains: 4, Sources: 80, Reporters: 5, Days: 60, Reports: n, RecordsPerReport: 4,
		MultiDayShare: 0.2, End: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)})
}

// loadWith stores the reports of cfg in files of 40.
func loadWith(t *testing.T, st *store.Store, cfg synth.Config) (ingests, reports []int64) {
	t.Helper()
	ingests, reports, _ = loadInserted(t, st, cfg)
	return ingests, reports
}

// loadInserted is loadWith that also returns what the after-store hook gets for each file:
// the reports it inserted, with their records.
func loadInserted(t *testing.T, st *store.Store, cfg synth.Config) (ingests, reports []int64, inserted [][]store.NewReport) {
	t.Helper()
	ctx := context.Background()
	g := synth.New(cfg)
	seed := cfg.Seed
	var batch []store.Parsed
	flush := func() {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d-%d", t.Name(), seed, len(reports))))
		ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test", Size: 1,
			ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		saved, err := st.SaveParsed(ctx, ing.ID, batch)
		if err != nil {
			t.Fatal(err)
		}
		ingests = append(ingests, ing.ID)
		var ins []store.NewReport
		for k, s := range saved {
			reports = append(reports, s.ReportID)
			if s.Inserted {
				ins = append(ins, store.NewReport{ID: s.ReportID, Header: batch[k].Header, Records: batch[k].Records})
			}
		}
		inserted = append(inserted, ins)
		batch = nil
	}
	for {
		p, ok := g.Next()
		if !ok {
			break
		}
		if batch = append(batch, p); len(batch) == 40 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return ingests, reports, inserted
}

// snapshot reads every rollup table, sorted, as text.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	var tables []string
	for _, f := range rollup.Families {
		tables = append(tables, f.Tables()...)
	}
	return snapshotOf(t, st, tables)
}

// snapshotOf reads the tables, sorted, as text.
func snapshotOf(t *testing.T, st *store.Store, tables []string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range tables {
		rows, err := st.DB().Raw("SELECT * FROM " + table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(vals)
			lines = append(lines, string(j))
		}
		rows.Close()
		slices.Sort(lines)
		fmt.Fprintf(&b, "%s (%d rows)\n%s\n", table, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// reset empties the rollups (not the domain and org ids) so the same reports apply again.
func reset(t *testing.T, st *store.Store) {
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
}

func messageTotal(t *testing.T, st *store.Store, table string) int64 {
	t.Helper()
	var n int64
	if err := st.DB().Raw("SELECT COALESCE(SUM(messages), 0) FROM " + table).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		_, ids := load(t, st, 11, 300)
		r := rollup.New(st, nil, testenv.Logger())

		if err := r.Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		once := snapshot(t, st)
		var stored int64
		if err := st.DB().Raw("SELECT SUM(message_count) FROM reports").Scan(&stored).Error; err != nil {
			t.Fatal(err)
		}
		for _, f := range rollup.Families {
			if f.Kind == rollup.Reports {
				continue
			}
			for _, table := range f.Tables() {
				if got := messageTotal(t, st, table); got != stored {
					t.Errorf("%s holds %d messages, the reports %d", table, got, stored)
				}
			}
		}

		// Again, in other batches, with ids that are no report: nothing changes.
		if err := r.Apply(ctx, append([]int64{999999, -1}, ids[10:50]...)); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if n, err := r.CatchUp(ctx, 100); err != nil || n != 0 {
			t.Fatalf("catch-up after apply found %d reports (%v), want 0", n, err)
		}
		if again := snapshot(t, st); again != once {
			t.Fatal("applying the same reports again changed the rollups")
		}

		// Written in parts of a few rows: the same rollups.
		reset(t, st)
		parts := rollup.New(st, nil, testenv.Logger())
		rollup.SetMaxHeld(parts, 50)
		if err := parts.Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, st); got != once {
			t.Fatalf("a batch written in parts gave other rollups:\n%s", firstDiff(got, once))
		}

		// Concurrently, overlapping, in random orders, with catch-ups racing: the same rollups.
		reset(t, st)
		rng := rand.New(rand.NewPCG(5, 6))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := 0; w < 6; w++ {
			part := slices.Clone(ids)
			rng.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
			part = part[:len(part)*2/3]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for start := 0; start < len(part); start += 37 {
					if err := r.Apply(ctx, part[start:min(start+37, len(part))]); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := r.CatchUp(ctx, 25)
					if err != nil {
						errs <- err
						return
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for {
			n, err := r.CatchUp(ctx, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		if got := snapshot(t, st); got != once {
			t.Fatalf("concurrent applies gave other rollups than one apply:\n%s", firstDiff(got, once))
		}
	})
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < min(len(al), len(bl)); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: %q vs %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d vs %d lines", len(al), len(bl))
}

// The task handlers: rollup:apply by ingest and by report ids, rollup:catchup for the rest.
func TestHandlers(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, ids := load(t, st, 12, 130)
		r := rollup.New(st, nil, testenv.Logger())

		applied := func() int64 {
			var n int64
			if err := st.DB().Raw("SELECT COUNT(*) FROM rollup_applied").Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		task, err := tasks.NewRollupApplyTask(ingests[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := r.HandleApply(ctx, task); err != nil {
			t.Fatal(err)
		}
		if got := applied(); got != 40 {
			t.Fatalf("apply for ingest %d applied %d reports, want its 40", ingests[0], got)
		}
		task, _ = tasks.NewRollupApplyReportsTask(ids[40:45])
		if err := r.HandleApply(ctx, task); err != nil {
			t.Fatal(err)
		}
		if got := applied(); got != 45 {
			t.Fatalf("after report ids: %d applied, want 45", got)
		}
		task, _ = tasks.NewRollupCatchUpTask(time.Now())
		if err := r.HandleCatchUp(ctx, task); err != nil {
			t.Fatal(err)
		}
		if got := applied(); got != int64(len(ids)) {
			t.Fatalf("after catch-up: %d applied, want %d", got, len(ids))
		}
		if err := r.HandleApply(ctx, asynq.NewTask(tasks.TypeRollupApply, []byte("{"))); err == nil || !strings.Contains(err.Error(), "skip retry") {
			t.Fatalf("bad payload: %v, want a SkipRetry error", err)
		}
	})
}

// A three-year report over many sources is applied quickly, in bounded memory (written in
// parts), with every message on a day of its period and no message lost or doubled.
func TestApplyLongReport(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		begin := time.Date(2021, 6, 1, 6, 30, 0, 0, time.UTC)
		end := begin.AddDate(3, 0, 0)
		var recs []dmarc.Record
		var total int64
		for i := 0; i < 40; i++ {
			n := int64(1000 + i*37)
			total += n
			recs = append(recs, dmarc.Record{SourceIP: netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i % 250)}), Count: n,
				Disposition: "none", DKIM: "pass", SPF: "fail", HeaderFrom: "long.example"})
		}
		sum := sha256.Sum256([]byte(t.Name()))
		ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "long.xml", Source: "test", Size: 1,
			ReceivedAt: end, Encoding: "identity", Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		saved, err := st.SaveParsed(ctx, ing.ID, []store.Parsed{{Header: &dmarc.Report{OrgName: "Slow Reporter", ReportID: "3y",
			DateBegin: begin, DateEnd: end, Policy: dmarc.Policy{Domain: "long.example", P: "none"}}, Records: recs}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, []int64{saved[0].ReportID}); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 30*time.Second && !raceEnabled {
			t.Errorf("a 3-year report of %d sources took %v to apply", len(recs), el)
		}
		for _, table := range []string{"rollup_all_day", "rollup_src_full_day", "rollup_src_month", "rollup_domain_month"} {
			if got := messageTotal(t, st, table); got != total {
				t.Errorf("%s: %d messages, want %d", table, got, total)
			}
		}
		var days struct{ Lo, Hi, N int64 }
		st.DB().Raw("SELECT MIN(period) AS lo, MAX(period) AS hi, COUNT(DISTINCT period) AS n FROM rollup_all_day").Scan(&days)
		if days.Lo != int64(rollup.DayOf(begin)) || days.Hi != int64(rollup.DayOf(end)) || days.N != 1097 {
			t.Errorf("days %d..%d (%d), want %d..%d (1097)", days.Lo, days.Hi, days.N, rollup.DayOf(begin), rollup.DayOf(end))
		}
	})
}
