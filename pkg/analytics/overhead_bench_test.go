package analytics_test

import (
	"net/http/httptest"
	"testing"

	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkMetricsOverhead: what the API's request metrics cost the 200-client warm load of
// BenchmarkRollupConcurrent. Two servers on the same data and cache, one bare and one with the
// metrics middleware, take the same b.N requests in alternated rounds (VIGIL_BENCH_ROUNDS,
// default 10); reported: the with/without ratios of CPU per request (this process's: the 200
// clients' side too, the same on both sides) and of requests/s, median, min and max over the
// rounds (docs/performance.md).
//
//	go test -run '^$' -bench 'MetricsOverhead/sqlite' -benchtime=2000x ./pkg/analytics
func BenchmarkMetricsOverhead(b *testing.B) {
	const clients = 200
	for _, e := range environments(b) {
		b.Run(e.name, func(b *testing.B) {
			bare := httptest.NewServer(newBenchServer(e, true, false))
			defer bare.Close()
			inst := httptest.NewServer(newBenchServer(e, true, true))
			defer inst.Close()
			lb := newLoad(b, e, bare.URL, clients, true)
			li := newLoad(b, e, inst.URL, clients, false) // the same cache, warmed above
			lb.run(b, len(lb.targets)*10)                 // open the connections of both
			li.run(b, len(li.targets)*10)
			b.ResetTimer()
			testenv.Overhead(b, testenv.OverheadRounds(10), "req",
				func() int { lb.run(b, b.N); return b.N },
				func() int { li.run(b, b.N); return b.N })
		})
	}
}
