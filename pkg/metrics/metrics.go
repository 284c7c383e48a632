// Package metrics is Vigil's Prometheus instrumentation: one registry per process holding the
// HTTP, task, ingest, mailbox, cache, rollup and database metrics (all named vigil_*), the echo
// and asynq middlewares that count requests and tasks, and the handler that serves them.
//
// Other packages are instrumented without importing this one: the ingest pipeline reports to
// an observer it is handed (ingest.Observer), and state that already exists (the database
// pool, the queues, the cache's counters, the rollup backlog) is read when Prometheus scrapes,
// so nothing is counted twice and an idle process costs nothing.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric (DESIGN.md: names prefixed vigil_).
const Namespace = "vigil"

// Metrics holds one process's registry and the instruments the middlewares and observers
// update. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	tasksProcessed *prometheus.CounterVec
	tasksFailed    *prometheus.CounterVec
	tasksRetried   *prometheus.CounterVec
	taskDuration   *prometheus.HistogramVec

	filesAccepted  *prometheus.CounterVec
	filesProcessed *prometheus.CounterVec
	bytesAccepted  prometheus.Counter
	reportsStored  prometheus.Counter
	recordsStored  prometheus.Counter

	imapPolls *prometheus.CounterVec
}

// New builds a registry with the Go runtime and process collectors and every Vigil metric
// registered (at zero, so dashboards and alerts see the series before the first event).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Latencies from a millisecond (a cached answer) to a minute (a large upload, a long task).
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "http_requests_total",
		Help: "HTTP requests answered, by route template, method and status code."}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help: "Time to answer an HTTP request, by route template and method.", Buckets: buckets}, []string{"route", "method"})
	m.tasksProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tasks_processed_total",
		Help: "Tasks this worker ran to an end (success or not), by type and queue."}, []string{"type", "queue"})
	m.tasksFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tasks_failed_total",
		Help: "Tasks that returned an error (to be retried, or archived when the error says not to retry), by type and queue."}, []string{"type", "queue"})
	m.tasksRetried = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "tasks_retried_total",
		Help: "Task runs that were retries of an earlier failed run, by type and queue."}, []string{"type", "queue"})
	m.taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "task_duration_seconds",
		Help: "Time a task handler ran, by type and queue.", Buckets: buckets}, []string{"type", "queue"})
	m.filesAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "ingest_files_received_total",
		Help: "Files handed to ingestion, by source (upload, imap, import) and outcome (accepted, duplicate, rejected)."}, []string{"source", "outcome"})
	m.filesProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "ingest_files_processed_total",
		Help: "Stored files parsed to an end, by outcome (processed, duplicate, failed)."}, []string{"outcome"})
	m.bytesAccepted = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ingest_received_bytes_total",
		Help: "Bytes of the files accepted for ingestion (as received, before decompression)."})
	m.reportsStored = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ingest_reports_total",
		Help: "Aggregate reports stored (new ones; a report repeated by another file is not counted)."})
	m.recordsStored = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ingest_records_total",
		Help: "Records of the aggregate reports stored."})
	m.imapPolls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "imap_polls_total",
		Help: "Mailbox polls run by this worker, by outcome (ok, error: retried, rejected: the mailbox cannot be polled as configured)."}, []string{"outcome"})
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.tasksProcessed, m.tasksFailed, m.tasksRetried, m.taskDuration,
		m.filesAccepted, m.filesProcessed, m.bytesAccepted, m.reportsStored, m.recordsStored, m.imapPolls)
	for _, o := range []string{"ok", "error", "rejected"} {
		m.imapPolls.WithLabelValues(o)
	}
	for _, o := range []string{"processed", "duplicate", "failed"} {
		m.filesProcessed.WithLabelValues(o)
	}
	return m
}

// Registry is where collectors of this process's state are added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds collectors; a collector registered twice is an error of the wiring.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry in the Prometheus text (or negotiated) format. A collector that
// fails (the database down) leaves its series out and is logged; the rest are still served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogErrors{log}, ErrorHandling: promhttp.ContinueOnError,
		Timeout: 10 * time.Second})
}

type slogErrors struct{ l *slog.Logger }

func (s slogErrors) Println(v ...any) {
	if s.l != nil {
		s.l.Warn("metrics: collection", "err", v)
	}
}

// Echo counts every answered request by its route template (c.Path(): /api/reports/:id, never
// the id itself, so the series stay few), method and status. A request no route matched is
// counted under route "unmatched".
func (m *Metrics) Echo(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Let the error handler write the answer now, so its status is the one counted.
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		m.httpRequests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		return nil
	}
}

// Asynq counts tasks by type and queue on the worker mux, and mailbox polls by outcome.
func (m *Metrics) Asynq(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		queue, _ := asynq.GetQueueName(ctx)
		// The failure and retry series of a task type exist from its first run, at 0, so a
		// rate() over them starts there rather than at the first failure.
		retried, failed := m.tasksRetried.WithLabelValues(t.Type(), queue), m.tasksFailed.WithLabelValues(t.Type(), queue)
		if n, _ := asynq.GetRetryCount(ctx); n > 0 {
			retried.Inc()
		}
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		m.taskDuration.WithLabelValues(t.Type(), queue).Observe(time.Since(start).Seconds())
		m.tasksProcessed.WithLabelValues(t.Type(), queue).Inc()
		if err != nil {
			failed.Inc()
		}
		if t.Type() == pollType {
			m.imapPolls.WithLabelValues(pollOutcome(err)).Inc()
		}
		return err
	})
}

// pollType is tasks.TypeMailboxPoll, repeated here so that this package depends on no domain
// package (TestPollTypeIsTheTaskType keeps them equal).
const pollType = "mailbox:poll"

func pollOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, asynq.SkipRetry):
		return "rejected"
	}
	return "error"
}

// FileReceived is ingest.Observer's: a file handed to ingestion and what became of it.
func (m *Metrics) FileReceived(source, outcome string, bytes int64) {
	m.filesAccepted.WithLabelValues(source, outcome).Inc()
	if outcome == "accepted" {
		m.bytesAccepted.Add(float64(bytes))
	}
}

// FileProcessed is ingest.Observer's: a stored file parsed to an end, with the reports and
// records it stored.
func (m *Metrics) FileProcessed(outcome string, reports, records int) {
	m.filesProcessed.WithLabelValues(outcome).Inc()
	m.reportsStored.Add(float64(reports))
	m.recordsStored.Add(float64(records))
}

// DBStats reads the pool statistics of db at each scrape.
func DBStats(db *sql.DB) prometheus.Collector { return dbStats{db: db} }

var (
	dbOpen     = prometheus.NewDesc("vigil_db_connections_open", "Open connections to the database (in use and idle).", nil, nil)
	dbInUse    = prometheus.NewDesc("vigil_db_connections_in_use", "Connections in use by a query or transaction.", nil, nil)
	dbIdle     = prometheus.NewDesc("vigil_db_connections_idle", "Idle connections in the pool.", nil, nil)
	dbMax      = prometheus.NewDesc("vigil_db_connections_max", "The most connections the pool may open (0: no limit).", nil, nil)
	dbWaits    = prometheus.NewDesc("vigil_db_connection_waits_total", "Times a query waited for a free connection.", nil, nil)
	dbWaitTime = prometheus.NewDesc("vigil_db_connection_wait_seconds_total", "Time spent waiting for a free connection.", nil, nil)
)

type dbStats struct{ db *sql.DB }

func (d dbStats) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{dbOpen, dbInUse, dbIdle, dbMax, dbWaits, dbWaitTime} {
		ch <- x
	}
}

func (d dbStats) Collect(ch chan<- prometheus.Metric) {
	s := d.db.Stats()
	ch <- prometheus.MustNewConstMetric(dbOpen, prometheus.GaugeValue, float64(s.OpenConnections))
	ch <- prometheus.MustNewConstMetric(dbInUse, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(dbIdle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(dbMax, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(dbWaits, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(dbWaitTime, prometheus.CounterValue, s.WaitDuration.Seconds())
}
