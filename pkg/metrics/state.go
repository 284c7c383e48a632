package metrics

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Queues exports asynq's own queue metrics (size by state, latency, processed and failed
// totals per queue, paused) as vigil_asynq_*, read from Redis at most once per SharedStateTTL
// (a dozen Redis calls per queue), in the background of a scrape.
func (m *Metrics) Queues(in *asynq.Inspector) error {
	return prometheus.WrapRegistererWithPrefix(Namespace+"_", m.reg).Register(newCachedCollector(asynqmetrics.NewQueueMetricsCollector(in)))
}

// CacheCounter is a cache that counts its lookups (gencache.Cache).
type CacheCounter interface {
	Counts() (hits, misses uint64)
}

var (
	cacheHits   = prometheus.NewDesc("vigil_cache_hits_total", "Analytics answers served from the cache.", nil, nil)
	cacheMisses = prometheus.NewDesc("vigil_cache_misses_total", "Analytics lookups the cache could not answer (computed, then stored).", nil, nil)
)

// Cache reads c's counters at each scrape.
func Cache(c CacheCounter) prometheus.Collector { return cache{c} }

type cache struct{ c CacheCounter }

func (c cache) Describe(ch chan<- *prometheus.Desc) { ch <- cacheHits; ch <- cacheMisses }
func (c cache) Collect(ch chan<- prometheus.Metric) {
	h, m := c.c.Counts()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(h))
	ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(m))
}

// Backlog is the rollup's backlog: stored reports not rolled up yet, and the age of the oldest.
type Backlog struct {
	Reports int64
	Oldest  time.Time // zero: none
}

var (
	rollupPending = prometheus.NewDesc("vigil_rollup_pending_reports", "Reports among the newest 10,000 stored whose contribution is not in the analytics rollups yet (read from the database at most every 10 s, in the background of a scrape: the value may be one scrape interval old).", nil, nil)
	rollupLag     = prometheus.NewDesc("vigil_rollup_lag_seconds", "Age at the scrape of the oldest stored report not rolled up yet (0: none); that report is found with vigil_rollup_pending_reports, at most every 10 s.", nil, nil)
)

// Rollup reads the backlog with read at most once per SharedStateTTL, in the background of a
// scrape (each read bounded by a few seconds, so a slow database cannot hold a scrape): the
// backlog probe is the one per-scrape database query, too slow to run at every scrape on a
// large database. The lag is the age of the oldest pending report at the scrape.
func Rollup(read func(context.Context) (Backlog, error)) prometheus.Collector {
	return rollup{snap: newSnapshot(read), now: time.Now}
}

type rollup struct {
	snap *snapshot[Backlog]
	now  func() time.Time
}

func (r rollup) Describe(ch chan<- *prometheus.Desc) { ch <- rollupPending; ch <- rollupLag }
func (r rollup) Collect(ch chan<- prometheus.Metric) {
	b, err := r.snap.get()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(rollupPending, err)
		return
	}
	lag := 0.0
	if !b.Oldest.IsZero() {
		lag = max(0, r.now().Sub(b.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(rollupPending, prometheus.GaugeValue, float64(b.Reports))
	ch <- prometheus.MustNewConstMetric(rollupLag, prometheus.GaugeValue, lag)
}
