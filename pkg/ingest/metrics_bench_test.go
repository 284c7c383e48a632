package ingest_test

import (
	"os"

	"github.com/vigilhq/vigil/pkg/metrics"
)

// instrument hands the pipeline the metrics' observer when VIGIL_BENCH_METRICS is set, so the
// benchmarks state what instrumentation costs (with and without).
func instrument(bu bundle) {
	if os.Getenv("VIGIL_BENCH_METRICS") != "" {
		bu.svc.Observe(metrics.New())
	}
}
