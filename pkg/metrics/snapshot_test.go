package metrics

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a settable time shared with the background reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// backlogSource counts the reads of the backlog (each read would be the database query) and
// answers the read number as the pending count; a read waits for release when gate is set.
type backlogSource struct {
	reads  atomic.Int64
	oldest time.Time
	fail   atomic.Bool
	gate   chan struct{}
}

func (s *backlogSource) read(ctx context.Context) (Backlog, error) {
	n := s.reads.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.fail.Load() {
		return Backlog{}, errors.New("database down")
	}
	return Backlog{Reports: n, Oldest: s.oldest}, nil
}

// newTestRollup is Rollup on clk, with a channel told of every background read's end.
func newTestRollup(src *backlogSource, clk *clock) (*prometheus.Registry, <-chan struct{}) {
	r := Rollup(src.read).(rollup)
	r.now, r.snap.now = clk.now, clk.now
	refreshed := make(chan struct{}, 16)
	r.snap.refreshed = func() { refreshed <- struct{}{} }
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	return reg, refreshed
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s absent", name)
	return 0
}

// Scrapes within the TTL issue no query; the first scrape after it serves the value kept and
// reads again in the background (once, however many scrapes come), and the next scrape serves
// the new value. The lag keeps growing between reads: it is taken at the scrape.
func TestRollupBacklogCached(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	src := &backlogSource{oldest: clk.t.Add(-time.Minute)}
	reg, refreshed := newTestRollup(src, clk)

	if got := gauge(t, reg, "vigil_rollup_pending_reports"); got != 1 {
		t.Fatalf("first scrape: pending %v, want 1 (read in line)", got)
	}
	clk.add(SharedStateTTL - time.Second)
	for range 5 {
		if got := gauge(t, reg, "vigil_rollup_pending_reports"); got != 1 {
			t.Fatalf("scrape within the TTL: pending %v, want the value kept (1)", got)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d backlog queries for 6 scrapes within the TTL, want 1", n)
	}
	if got, want := gauge(t, reg, "vigil_rollup_lag_seconds"), (time.Minute + SharedStateTTL - time.Second).Seconds(); got != want {
		t.Errorf("lag %v, want %v (taken at the scrape)", got, want)
	}

	// Past the TTL: the scrapes that find the value old serve it and start one read.
	src.gate = make(chan struct{})
	clk.add(time.Second)
	for range 3 {
		if got := gauge(t, reg, "vigil_rollup_pending_reports"); got != 1 {
			t.Fatalf("scrape past the TTL: pending %v, want the value kept (1) while it is read again", got)
		}
	}
	close(src.gate)
	<-refreshed
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("%d backlog queries after 3 scrapes past the TTL, want 2 (one background read)", n)
	}
	if got := gauge(t, reg, "vigil_rollup_pending_reports"); got != 2 {
		t.Errorf("after the background read: pending %v, want 2", got)
	}
	select {
	case <-refreshed:
		t.Errorf("a second background read ran")
	default:
	}
}

// A failed read is reported by the scrape (the series left out, the error logged) and keeps
// no value: the next scrape reads again, and a background failure is not hidden behind the
// last good value.
func TestRollupBacklogFailure(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	src := &backlogSource{}
	reg, refreshed := newTestRollup(src, clk)

	src.fail.Store(true)
	if _, err := reg.Gather(); err == nil {
		t.Fatal("scrape with the database down: no error")
	}
	src.fail.Store(false)
	if got := gauge(t, reg, "vigil_rollup_pending_reports"); got != 2 {
		t.Fatalf("scrape after a failure: pending %v, want 2 (read again in line)", got)
	}

	src.fail.Store(true)
	clk.add(SharedStateTTL)
	gauge(t, reg, "vigil_rollup_pending_reports") // serves 2, reads in the background, fails
	<-refreshed
	if _, err := reg.Gather(); err == nil {
		t.Error("scrape after a failed background read: no error (an old value served)")
	}
}

// countingCollector counts its collections (each would be a dozen Redis calls per queue).
type countingCollector struct {
	n    atomic.Int64
	desc *prometheus.Desc
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.n.Add(1)))
}

// The queue metrics are collected from Redis at most once per TTL too.
func TestCachedCollector(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	inner := &countingCollector{desc: prometheus.NewDesc("vigil_test_size", "test", nil, nil)}
	c := newCachedCollector(inner)
	c.snap.now = clk.now
	refreshed := make(chan struct{}, 1)
	c.snap.refreshed = func() { refreshed <- struct{}{} }
	for range 4 {
		if got := testutil.ToFloat64(c); got != 1 {
			t.Fatalf("scrape within the TTL: %v, want 1", got)
		}
	}
	clk.add(SharedStateTTL)
	if got := testutil.ToFloat64(c); got != 1 {
		t.Fatalf("scrape past the TTL: %v, want the value kept (1)", got)
	}
	<-refreshed
	if got := testutil.ToFloat64(c); got != 2 {
		t.Errorf("after the background collection: %v, want 2", got)
	}
	if n := inner.n.Load(); n != 2 {
		t.Errorf("%d collections for 6 scrapes, want 2", n)
	}
}
