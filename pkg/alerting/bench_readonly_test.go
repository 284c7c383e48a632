package alerting

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkFindDefaults is the read side of the hourly run, on a database it must not write
// to (the shared 10M-record benchmark database): every default rule, taken as enabled, finds
// its conditions over every domain and looks up which are cooling down, inside a READ ONLY
// transaction (PostgreSQL refuses any write in it), as of the day after the last one rolled up. What it leaves out is raising new alerts,
// whose cost follows the number of new findings, not the records; BenchmarkEvaluateDefaults
// measures the whole run on a database of one's own. It also runs the same for 100 domains
// one at a time (the check after a rollup apply) and reports the median and 95th percentile.
//
//	VIGIL_BENCH_READONLY_DATABASE_URL=postgres://…/vigil_10m \
//	  make bench PKGS=./pkg/alerting BENCH=FindDefaults COUNT=3 BENCHTIME=3x
func BenchmarkFindDefaults(b *testing.B) {
	dsn := os.Getenv("VIGIL_BENCH_READONLY_DATABASE_URL")
	if dsn == "" {
		b.Skip("VIGIL_BENCH_READONLY_DATABASE_URL is not set (a rolled-up PostgreSQL database, read only)")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	tx := st.DB().WithContext(ctx).Begin(&sql.TxOptions{ReadOnly: true})
	if tx.Error != nil {
		b.Fatal(tx.Error)
	}
	b.Cleanup(func() { tx.Rollback() })
	// Evaluated as of the hour after the last rolled-up day: a benchmark database is a
	// snapshot (or, while its rollups are built, a prefix of one), and windows ending today
	// would read nothing from it.
	var last sql.NullInt32
	if err := tx.Raw("SELECT MAX(period) FROM rollup_domain_day").Scan(&last).Error; err != nil || !last.Valid {
		b.Fatalf("no day rollups to evaluate (%v)", err)
	}
	asOf := rollup.DayTime(last.Int32 + 1).Add(time.Hour)
	b.Logf("evaluated as of %s", asOf.Format(time.RFC3339))
	s := New(Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return asOf }})
	s.db = tx
	rules, err := s.ListRules(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var defaults []Rule
	for _, r := range rules {
		if r.IsDefault {
			r.Enabled = true
			defaults = append(defaults, r)
		}
	}
	all, err := s.domainNames(ctx)
	if err != nil {
		b.Fatal(err)
	}
	today := rollup.DayOf(s.now())
	// find is Evaluate without the raises: the findings of every rule for the domains (nil:
	// all) and the cooldown lookup that spares an hourly run most raises.
	find := func(domains []string) int {
		n := 0
		for _, r := range defaults {
			sc := scope{names: map[int32]string{}, all: domains == nil}
			for id, name := range all {
				if domains == nil || slices.Contains(domains, name) {
					sc.names[id] = name
				}
			}
			if domains != nil {
				sc.explicit = domains
			}
			fs, err := s.evaluate(ctx, r, sc, today)
			if err != nil {
				b.Fatalf("rule %s: %v", r.Type, err)
			}
			if _, err := s.coolingDown(ctx, r, fs); err != nil {
				b.Fatal(err)
			}
			n += len(fs)
		}
		return n
	}
	var findings int
	b.ResetTimer()
	for b.Loop() {
		findings = find(nil)
	}
	b.StopTimer()
	var names []string
	for _, n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(1, 2))
	var per []time.Duration
	for range 100 {
		start := time.Now()
		find([]string{names[rng.IntN(len(names))]})
		per = append(per, time.Since(start))
	}
	slices.Sort(per)
	b.ReportMetric(float64(len(all)), "domains")
	b.ReportMetric(float64(findings), "findings")
	b.ReportMetric(float64(per[len(per)/2].Microseconds())/1000, "p50-one-domain-ms")
	b.ReportMetric(float64(per[len(per)*95/100].Microseconds())/1000, "p95-one-domain-ms")
}
