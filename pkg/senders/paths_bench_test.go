package senders

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkSendersPaths times the two ways Rows answers /api/senders?days=365 (all domains)
// in turn, request by request, on a database BenchmarkSendersQuery has prepared (sender
// rollup built): on a shared machine interleaving makes the ratio fair. Reports each path's
// median.
//
//	VIGIL_BENCH_DATABASE_URL=… make bench PKGS=./pkg/senders BENCH=SendersPaths BENCHTIME=10x COUNT=3
func BenchmarkSendersPaths(b *testing.B) {
	ctx := context.Background()
	sv, api := preparedAPI(b)
	f := store.Filter{Start: time.Now().AddDate(0, 0, -365)}
	var slow, fast []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		sums, _, err := api.fromSources(ctx, f, DimSender)
		if err != nil {
			b.Fatal(err)
		}
		_ = groupItems(rowsOf(ctx, b, api, sums))
		slow = append(slow, time.Since(start))
		start = time.Now()
		sums, ok, err := sv.fromRollup(ctx, DimSender, nil, true, windowOf(f))
		if err != nil || !ok {
			b.Fatalf("sender rollup not fresh (%v): run BenchmarkSendersQuery first", err)
		}
		_ = groupItems(rowsOf(ctx, b, api, sums))
		fast = append(fast, time.Since(start))
	}
	slices.Sort(slow)
	slices.Sort(fast)
	b.ReportMetric(float64(slow[len(slow)/2].Microseconds())/1000, "per-source-p50-ms")
	b.ReportMetric(float64(fast[len(fast)/2].Microseconds())/1000, "rollup-p50-ms")
}

// rowsOf attaches the groups to sums as Rows does.
func rowsOf(ctx context.Context, b *testing.B, api *API, sums []Sums) []Row {
	ids := make([]int64, 0, len(sums))
	seen := map[int64]bool{}
	for _, s := range sums {
		if !seen[s.KeyID] {
			seen[s.KeyID] = true
			ids = append(ids, s.KeyID)
		}
	}
	gs, _, err := api.svc.groups(ctx, ids)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]Row, len(sums))
	for i, s := range sums {
		out[i] = Row{Group: gs[s.KeyID], Sums: s}
	}
	return out
}

// BenchmarkSendersRollupPath times /api/senders?days=365 (all domains) as the handler answers
// it from a fresh sender rollup, without HTTP: Rows, the grouping and the advice of the first
// page. It needs a database BenchmarkSendersQuery has prepared and does not rebuild anything,
// so it can be profiled alone (-cpuprofile). Reports the median and p95.
//
//	VIGIL_BENCH_DATABASE_URL=… make bench PKGS=./pkg/senders BENCH=SendersRollupPath BENCHTIME=10x COUNT=3
func BenchmarkSendersRollupPath(b *testing.B) {
	ctx := context.Background()
	sv, api := preparedAPI(b)
	f := store.Filter{Start: time.Now().AddDate(0, 0, -365)}
	if _, ok, err := sv.fromRollup(ctx, DimSender, nil, true, windowOf(f)); err != nil || !ok {
		b.Fatalf("sender rollup not fresh (%v): run BenchmarkSendersQuery first", err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rows, err := api.Rows(ctx, f, DimSender)
		if err != nil {
			b.Fatal(err)
		}
		items := groupItems(rows)
		for j := range items[:min(len(items), defaultPageSize)] {
			advise(&items[j])
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*95+99)/100-1].Microseconds())/1000, "p95-ms")
}

// BenchmarkSendersTotals times the two reads of the sender rollup for /api/senders?days=365
// (all domains) in turn, request by request, each with the grouping in Go: the periods inside
// the window (windowQuery, the only read before migration 00021) and the totals less the rows
// before the window (totalsQuery, what fromRollup now picks for it). Needs a database
// BenchmarkSendersQuery has prepared. Reports each read's median and p95.
//
//	VIGIL_BENCH_DATABASE_URL=… make bench PKGS=./pkg/senders BENCH=SendersTotals BENCHTIME=10x COUNT=3
func BenchmarkSendersTotals(b *testing.B) {
	ctx := context.Background()
	sv, api := preparedAPI(b)
	w := windowOf(store.Filter{Start: time.Now().AddDate(0, 0, -365)})
	have, err := sv.states(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var ids []int64
	for d := range have {
		if d != 0 {
			ids = append(ids, int64(d))
		}
	}
	list := int64List(ids)
	lat := map[string][]time.Duration{}
	groups := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range []struct {
			name string
			q    func(int, string, window) (string, []any)
		}{{"periods", windowQuery}, {"totals", func(dim int, list string, w window) (string, []any) { return totalsQuery(dim, list, w, true) }}} {
			start := time.Now()
			q, args := p.q(DimSender, list, w)
			sums, err := sv.readSums(ctx, q, args)
			if err != nil {
				b.Fatal(err)
			}
			items := groupItems(rowsOf(ctx, b, api, sums))
			for j := range items[:min(len(items), defaultPageSize)] {
				advise(&items[j])
			}
			lat[p.name] = append(lat[p.name], time.Since(start))
			groups = len(sums)
		}
	}
	b.StopTimer()
	for name, l := range lat {
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(l[(len(l)*95+99)/100-1].Microseconds())/1000, name+"-p95-ms")
	}
	b.ReportMetric(float64(groups), "groups")
}

// preparedAPI opens the database of VIGIL_BENCH_DATABASE_URL (prepared by
// BenchmarkSendersQuery: sender rollup built) for the path benchmarks, or skips; the store is
// closed when the benchmark ends.
func preparedAPI(b *testing.B) (*Service, *API) {
	b.Helper()
	dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL")
	if dsn == "" {
		b.Skip("set VIGIL_BENCH_DATABASE_URL to a database prepared by BenchmarkSendersQuery")
	}
	st, err := store.Open(context.Background(), dsn, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	sv, err := New(st, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	return sv, NewAPI(sv, analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()}))
}
