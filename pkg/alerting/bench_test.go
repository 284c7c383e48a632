package alerting

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkEvaluateDefaults is the hourly run: every default rule, enabled, over every domain.
// The first run raises what the data holds; the later ones find the same and are held back by
// the cooldowns, as an hourly run mostly is. It also evaluates 100 domains one at a time (the
// check after a rollup apply) and reports the median.
//
//	VIGIL_BENCH_DATABASE_URL=URL   a database filled by vigil-synth (make bench-data
//	                               DOMAINS=1000 …); else a small synthetic set on SQLite
//
//	make bench PKGS=./pkg/alerting BENCH=EvaluateDefaults COUNT=5 BENCHTIME=3x
func BenchmarkEvaluateDefaults(b *testing.B) {
	ctx := context.Background()
	var st *store.Store
	if dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL"); dsn != "" {
		var err error
		if st, err = store.Open(ctx, dsn, testenv.Logger()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
	} else {
		st = testenv.Backends()[0].Store(b)
		g := synth.New(synth.Config{Seed: 7, Domains: 100, Sources: 2000, Reporters: 12, Days: 60, Reports: 5000, RecordsPerReport: 4,
			MultiDayShare: 0.05, End: time.Now().UTC()})
		if _, err := synth.Write(ctx, st, g, 2, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := rollup.New(st, nil, testenv.Logger()).CatchUp(ctx, 1_000_000); err != nil {
			b.Fatal(err)
		}
	}
	s := New(Deps{Store: st, Log: testenv.Logger(), MaxAlertsPerRun: 100_000})
	rules, err := s.ListRules(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range rules {
		if r.IsDefault && !r.Enabled {
			if _, err := s.UpdateRule(ctx, r.ID, RuleInput{Enabled: ptr(true)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	names, err := s.domainNames(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var domains []string
	for _, n := range names {
		domains = append(domains, n)
	}
	slices.Sort(domains)
	rng := rand.New(rand.NewPCG(1, 2))
	var last RunResult
	var per []time.Duration
	b.ResetTimer()
	for b.Loop() {
		if last, err = s.Evaluate(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for range 100 {
		d := domains[rng.IntN(len(domains))]
		start := time.Now()
		if _, err := s.Evaluate(ctx, []string{d}); err != nil {
			b.Fatal(err)
		}
		per = append(per, time.Since(start))
	}
	slices.Sort(per)
	b.ReportMetric(float64(len(domains)), "domains")
	b.ReportMetric(float64(last.Findings), "findings")
	b.ReportMetric(float64(per[len(per)/2].Microseconds())/1000, "p50-one-domain-ms")
	b.ReportMetric(float64(per[len(per)*95/100].Microseconds())/1000, "p95-one-domain-ms")
}
