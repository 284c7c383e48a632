package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SharedStateTTL is how long a read of the shared state (the rollup backlog in the database,
// the queues in Redis) is served before it is read again. A scrape never waits for that read
// but the first one: the scrape that finds the value older serves it and reads again in the
// background, once however many scrapers come, so what it serves was read at most one scrape
// interval (and this TTL) ago. Without it the backlog probe (20,000 index probes, 63 ms on the
// 10M-record database) was most of every scrape.
const SharedStateTTL = 10 * time.Second

// readTimeout bounds one read of the shared state, so a slow database or Redis cannot hold a
// scrape (the first) or pile up background reads.
const readTimeout = 5 * time.Second

// snapshot keeps the last value read and reads again at most once per ttl, off the scrape
// path. A value is only ever read in line when there is none: at the first scrape, and after
// a read failed (the failure is then reported by that scrape, not hidden behind an old value).
type snapshot[T any] struct {
	read func(context.Context) (T, error)
	ttl  time.Duration
	now  func() time.Time

	fill sync.Mutex // held by the one in-line read; concurrent first scrapers wait for it

	mu         sync.Mutex
	val        T
	at         time.Time // when val was read; zero: no value (none yet, or the last read failed)
	refreshing bool
	refreshed  func() // tests: called after each background read
}

func newSnapshot[T any](read func(context.Context) (T, error)) *snapshot[T] {
	return &snapshot[T]{read: read, ttl: SharedStateTTL, now: time.Now}
}

// get returns the value, reading it in line only when there is none.
func (s *snapshot[T]) get() (T, error) {
	if v, ok := s.cached(); ok {
		return v, nil
	}
	s.fill.Lock()
	defer s.fill.Unlock()
	if v, ok := s.cached(); ok { // another scrape read it while this one waited
		return v, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	v, err := s.read(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	s.mu.Lock()
	s.val, s.at = v, s.now()
	s.mu.Unlock()
	return v, nil
}

// cached returns the value kept, if any, and starts a background read when it is older than
// the TTL and none is running.
func (s *snapshot[T]) cached() (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at.IsZero() {
		return s.val, false
	}
	if !s.refreshing && s.now().Sub(s.at) >= s.ttl {
		s.refreshing = true
		go s.refresh()
	}
	return s.val, true
}

func (s *snapshot[T]) refresh() {
	// A collector gets no context from the scrape, and this read outlives it anyway.
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	v, err := s.read(ctx)
	s.mu.Lock()
	if err != nil {
		var zero T
		s.val, s.at = zero, time.Time{} // the next scrape reads in line and reports the error
	} else {
		s.val, s.at = v, s.now()
	}
	s.refreshing = false
	done := s.refreshed
	s.mu.Unlock()
	if done != nil {
		done()
	}
}

// cachedCollector serves c's metrics through a snapshot: c is collected at most once per TTL,
// in the background of a scrape.
type cachedCollector struct {
	c    prometheus.Collector
	snap *snapshot[[]prometheus.Metric]
}

func newCachedCollector(c prometheus.Collector) *cachedCollector {
	return &cachedCollector{c: c, snap: newSnapshot(func(context.Context) ([]prometheus.Metric, error) {
		ch := make(chan prometheus.Metric)
		var ms []prometheus.Metric
		go func() { c.Collect(ch); close(ch) }()
		for m := range ch {
			ms = append(ms, m)
		}
		if len(ms) == 0 {
			// asynq's collector logs a Redis error and sends nothing: keep no value, so the
			// next scrape reads again rather than serving an empty set for a TTL.
			return nil, errNothingCollected
		}
		return ms, nil
	})}
}

type collectError string

func (e collectError) Error() string { return string(e) }

const errNothingCollected = collectError("nothing collected")

func (c *cachedCollector) Describe(ch chan<- *prometheus.Desc) { c.c.Describe(ch) }

func (c *cachedCollector) Collect(ch chan<- prometheus.Metric) {
	ms, _ := c.snap.get()
	for _, m := range ms {
		ch <- m
	}
}
