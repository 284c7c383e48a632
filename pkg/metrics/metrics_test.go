package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/tasks"
)

// value reads one series from the registry's exposition.
func value(t *testing.T, m *metrics.Metrics, series string) string {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(series, "{")
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if name+"{"+strings.Join(ls, ",")+"}" == series {
				if c := mt.GetCounter(); c != nil {
					return fmt.Sprint(c.GetValue())
				}
				return fmt.Sprint(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return "absent"
}

// Requests are counted by route template, never by the raw path (ids would make a series
// each); a panic's 500 and an unmatched path are counted too.
func TestEcho(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	e := echo.New()
	e.Use(m.Echo, middleware.Recover())
	e.GET("/api/reports/:id", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	e.GET("/boom", func(c echo.Context) error { panic("boom") })
	e.GET("/bad", func(c echo.Context) error { return echo.NewHTTPError(http.StatusBadRequest, "no") })
	for _, p := range []string{"/api/reports/1", "/api/reports/2", "/boom", "/bad", "/no/such/path/123"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	tests := []struct{ series, want string }{
		{`vigil_http_requests_total{method="GET",route="/api/reports/:id",status="200"}`, "2"},
		{`vigil_http_requests_total{method="GET",route="/boom",status="500"}`, "1"},
		{`vigil_http_requests_total{method="GET",route="/bad",status="400"}`, "1"},
		{`vigil_http_requests_total{method="GET",route="unmatched",status="404"}`, "1"},
		{`vigil_http_request_duration_seconds{method="GET",route="/api/reports/:id"}`, "2"},
	}
	for _, tt := range tests {
		if got := value(t, m, tt.series); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.series, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.Registry(), "vigil_http_requests_total"); n != 4 {
		t.Errorf("%d request series, want 4 (one per route template and status)", n)
	}
}

// Tasks are counted by type and queue with their outcome; mailbox polls by outcome.
func TestAsynq(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	errBoom := errors.New("server unreachable")
	tests := []struct {
		typ string
		err error
	}{
		{tasks.TypeMailboxPoll, nil},
		{tasks.TypeMailboxPoll, errBoom},
		{tasks.TypeMailboxPoll, fmt.Errorf("bad config: %w", asynq.SkipRetry)},
		{tasks.TypeReportParse, nil},
	}
	for _, tt := range tests {
		h := m.Asynq(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return tt.err }))
		if err := h.ProcessTask(context.Background(), asynq.NewTask(tt.typ, nil)); !errors.Is(err, tt.err) {
			t.Errorf("the middleware changed the error: %v", err)
		}
	}
	want := []struct{ series, want string }{
		{`vigil_tasks_processed_total{queue="",type="mailbox:poll"}`, "3"},
		{`vigil_tasks_failed_total{queue="",type="mailbox:poll"}`, "2"},
		{`vigil_tasks_failed_total{queue="",type="report:parse"}`, "0"},
		{`vigil_imap_polls_total{outcome="ok"}`, "1"},
		{`vigil_imap_polls_total{outcome="error"}`, "1"},
		{`vigil_imap_polls_total{outcome="rejected"}`, "1"},
		{`vigil_task_duration_seconds{queue="",type="report:parse"}`, "1"},
	}
	for _, tt := range want {
		if got := value(t, m, tt.series); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.series, got, tt.want)
		}
	}
}

// Ingestion's observer moves the ingest counters.
func TestObserver(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.FileReceived("upload", "accepted", 100)
	m.FileReceived("upload", "duplicate", 100)
	m.FileProcessed("processed", 3, 40)
	m.FileProcessed("failed", 0, 0)
	for series, want := range map[string]string{
		`vigil_ingest_files_received_total{outcome="accepted",source="upload"}`:  "1",
		`vigil_ingest_files_received_total{outcome="duplicate",source="upload"}`: "1",
		`vigil_ingest_received_bytes_total{}`:                                    "100",
		`vigil_ingest_files_processed_total{outcome="failed"}`:                   "1",
		`vigil_ingest_reports_total{}`:                                           "3",
		`vigil_ingest_records_total{}`:                                           "40",
	} {
		if got := value(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
}

// Every metric is named vigil_* (or the runtime's go_*/process_*) and passes the linter of
// Prometheus's conventions (units, _total on counters).
func TestNames(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "vigil_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	fams, _ := m.Registry().Gather()
	for _, f := range fams {
		n := f.GetName()
		if !strings.HasPrefix(n, "vigil_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			t.Errorf("metric %s is not prefixed vigil_", n)
		}
	}
}
