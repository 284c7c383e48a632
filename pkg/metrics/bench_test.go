package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/metrics"
)

// BenchmarkEcho is what the request metrics add to one request: run with and without
// (the "bare" case) and subtract; compare with a request's own cost in the analytics and
// upload benchmarks (docs/performance.md).
func BenchmarkEcho(b *testing.B) {
	for _, instrumented := range []bool{false, true} {
		name := "bare"
		if instrumented {
			name = "instrumented"
		}
		b.Run(name, func(b *testing.B) {
			e := echo.New()
			if instrumented {
				e.Use(metrics.New().Echo)
			}
			e.GET("/api/reports/:id", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			req := httptest.NewRequest(http.MethodGet, "/api/reports/42", nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rec := httptest.NewRecorder()
				for pb.Next() {
					e.ServeHTTP(rec, req)
				}
			})
		})
	}
}

// BenchmarkAsynq is what the task metrics add to one task run.
func BenchmarkAsynq(b *testing.B) {
	m := metrics.New()
	h := m.Asynq(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	t := asynq.NewTask("report:parse", nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.ProcessTask(ctx, t)
	}
}

// BenchmarkObserver is what the ingest counters add to one file.
func BenchmarkObserver(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.FileReceived("upload", "accepted", 1000)
		m.FileProcessed("processed", 1, 10)
	}
}
