package analytics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// oldReport lies more than 3660 days before testNow, so an open window spans more days than a
// series may hold.
func oldReport() store.Parsed {
	b := time.Date(2010, 3, 1, 0, 0, 0, 0, time.UTC)
	return store.Parsed{Header: &dmarc.Report{OrgName: "google.com", ReportID: "old-2010", DateBegin: b, DateEnd: b.Add(24*time.Hour - time.Second),
		Policy: dmarc.Policy{Domain: "acme0.example", P: "none"}}, Records: []dmarc.Record{rec("192.0.2.1", 11, "none", "pass", "pass", "acme0.example")}}
}

// boundedServer is the world plus the old report, its rollups applied.
func boundedServer(t *testing.T) *server {
	t.Helper()
	st := testenv.Backends()[0].Store(t)
	ids := append(world(t, st, 31, 120), save(t, st, []store.Parsed{oldReport()})...)
	if err := newRollup(st).Apply(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	return newServer(st, nil, func() time.Time { return testNow })
}

// Series never hold more than 3660 points: a timeline too long for its interval is answered
// at a coarser one, and says so; a failure trend without a start keeps its last 3660 days and
// says so; an end far in the future ends the series at today.
func TestSeriesBounds(t *testing.T) {
	t.Parallel()
	srv := boundedServer(t)
	var sum analytics.Summary
	srv.get(t, "/api/rollup/summary", nil, &sum)

	tests := []struct {
		query               string
		interval, asked     string
		firstStart, lastEnd string // "" to skip
	}{
		// 2010-03-01 to 2024-06-30 is 5236 days: weeks instead of days.
		{query: "", interval: "week", asked: "day", firstStart: "2010-03-01"},
		{query: "end=9999-12-31", interval: "week", asked: "day", lastEnd: "2024-06-30"},
		{query: "interval=week&end=2100-12-31", interval: "week", asked: "week", lastEnd: "2024-06-30"},
		{query: "interval=month&start=1800-01-01&end=9999-12-31", interval: "month", asked: "month", firstStart: "1800-01-01", lastEnd: "2024-06-30"},
		// 1600 weeks fit: no coarsening.
		{query: "interval=week&start=1995-01-01", interval: "week", asked: "week"},
		{query: "start=2015-01-01&end=2024-12-31", interval: "day", asked: "day", firstStart: "2015-01-01", lastEnd: "2024-06-30"},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		var tl analytics.Timeline
		srv.get(t, "/api/rollup/timeline", q, &tl)
		if tl.Interval != tc.interval || tl.RequestedInterval != tc.asked {
			t.Errorf("timeline?%s: interval %q requested %q, want %q and %q", tc.query, tl.Interval, tl.RequestedInterval, tc.interval, tc.asked)
		}
		if len(tl.Points) == 0 || len(tl.Points) > 3660 {
			t.Errorf("timeline?%s: %d points, want 1 to 3660", tc.query, len(tl.Points))
			continue
		}
		if tc.firstStart != "" && tl.Points[0].Start != tc.firstStart {
			t.Errorf("timeline?%s: first point starts %s, want %s", tc.query, tl.Points[0].Start, tc.firstStart)
		}
		if last := tl.Points[len(tl.Points)-1]; tc.lastEnd != "" && last.End != tc.lastEnd {
			t.Errorf("timeline?%s: last point ends %s, want %s", tc.query, last.End, tc.lastEnd)
		}
		var msgs int64
		for _, p := range tl.Points {
			msgs += p.Messages
		}
		if tc.query == "" && msgs != sum.TotalMessages {
			t.Errorf("timeline: points add up to %d messages, the summary says %d", msgs, sum.TotalMessages)
		}
	}

	var ft analytics.FailureTrend
	srv.get(t, "/api/rollup/failure-trend", nil, &ft)
	if !ft.Truncated || len(ft.Points) != 3660 || ft.Points[len(ft.Points)-1].Date != "2024-06-30" || ft.Points[0].Date != "2014-06-24" {
		t.Errorf("failure-trend: truncated %v, %d points from %s to %s; want truncated, 3660 points from 2014-06-24 to 2024-06-30",
			ft.Truncated, len(ft.Points), ft.Points[0].Date, ft.Points[len(ft.Points)-1].Date)
	}
	srv.get(t, "/api/rollup/failure-trend", url.Values{"start": {"2024-01-01"}, "end": {"9999-12-31"}}, &ft)
	if ft.Truncated || len(ft.Points) != 182 || ft.Points[len(ft.Points)-1].Date != "2024-06-30" {
		t.Errorf("failure-trend from 2024-01-01 to 9999-12-31: truncated %v, %d points; want 182 points to 2024-06-30", ft.Truncated, len(ft.Points))
	}
}

// The costliest valid request of each endpoint keeps the server's allocations, and so its heap
// growth, under maxAlloc and its answer under maxBody. Before series were bounded,
// timeline?end=9999-12-31 built a 575 MB answer. Not parallel: the allocation counter is the
// process's, so nothing else may run meanwhile.
func TestCostliestRequestsStayBounded(t *testing.T) {
	const (
		maxAlloc = 64 << 20 // bytes allocated while answering one request
		maxBody  = 2 << 20  // bytes of the answer
	)
	srv := boundedServer(t)
	costliest := map[string]string{
		"summary":             "end=9999-12-31",
		"alignment":           "end=9999-12-31",
		"alignment-breakdown": "end=9999-12-31",
		"sources":             "end=9999-12-31&limit=500",
		"top-organizations":   "end=9999-12-31&limit=500",
		"policy":              "end=9999-12-31&page_size=500",
		"timeline":            "interval=day&start=1720-01-01&end=9999-12-31", // 3648 months
		"timeline#days":       "interval=day&start=2014-06-24&end=9999-12-31", // 3660 days
		"failure-trend":       "start=2014-06-24&end=9999-12-31",              // 3660 days
	}
	for name, query := range costliest {
		path := name
		if i := len(path) - len("#days"); i > 0 && path[i:] == "#days" {
			path = path[:i]
		}
		req := httptest.NewRequest(http.MethodGet, "/api/rollup/"+path+"?"+query, nil)
		rec := httptest.NewRecorder()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		srv.e.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if rec.Code != http.StatusOK {
			t.Errorf("%s?%s: status %d %s", path, query, rec.Code, rec.Body)
			continue
		}
		if alloc > maxAlloc || rec.Body.Len() > maxBody {
			t.Errorf("%s?%s: allocated %d bytes and answered %d; want at most %d and %d", path, query, alloc, rec.Body.Len(), maxAlloc, maxBody)
		}
		t.Logf("%s?%s: allocated %.1f MB, answered %.1f KB", path, query, float64(alloc)/(1<<20), float64(rec.Body.Len())/1024)
	}
}
