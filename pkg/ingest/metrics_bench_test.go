package ingest_test

import (
	"testing"

	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkMetricsOverhead: what the ingest counters and the task metrics cost the pipeline
// of BenchmarkPipelineCorpus (the corpus's real reports made distinct, b.N copies of the set
// per round). Two pipelines on stores of their own, one bare and one whose service reports to
// the metrics' observer and whose batches each run through the task middleware (as a worker's
// report:parse task), take the same files in alternated rounds (VIGIL_BENCH_ROUNDS, default
// 10); reported: the with/without ratios of CPU per report (this process's: the database
// server's CPU is not in it, which makes the ratio an upper bound on PostgreSQL) and of
// reports/s, median, min and max over the rounds (docs/performance.md).
//
//	go test -run '^$' -bench MetricsOverhead -benchtime=10x ./pkg/ingest
func BenchmarkMetricsOverhead(b *testing.B) {
	base, _ := realXML(b)
	be := benchBackend()
	bare := setup(b, be, nil, nil)
	inst := setup(b, be, nil, nil)
	m := metrics.New()
	inst.svc.Observe(m)
	inst.task = m.Asynq
	b.Logf("backend %s, %d reports per round and side", be.Name, len(base)*b.N)
	round := 0
	work := func(bu bundle) func() int {
		return func() int {
			files := make([][]byte, 0, len(base)*b.N)
			for s := range b.N {
				for _, d := range base {
					files = append(files, variant(d, round*b.N+s))
				}
			}
			runPipeline(b, bu, files, benchWorkers())
			return len(files)
		}
	}
	b.ResetTimer()
	testenv.Overhead(b, testenv.OverheadRounds(10), "report",
		func() int { n := work(bare)(); round++; return n },
		func() int { n := work(inst)(); round++; return n })
}
