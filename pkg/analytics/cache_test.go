package analytics_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Answers are served from the cache until their domain's rollups change; a new report for a
// domain changes that domain's answers, and all-domain ones, at once, and leaves other domains'
// cached answers alone.
func TestCacheInvalidation(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		opt := b.Redis(t, 11)
		rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
		t.Cleanup(func() { rdb.Close() })
		ctx := context.Background()
		ru := rollup.New(st, gencache.New(rdb, time.Minute, testenv.Logger()), testenv.Logger())
		if err := ru.Apply(ctx, world(t, st, 21, 120)); err != nil {
			t.Fatal(err)
		}
		srv := newServer(st, rdb, func() time.Time { return testNow })
		acme, globex, all := url.Values{"domain": {"acme0.example"}}, url.Values{"domain": {"globex1.example"}}, url.Values{}
		summary := func(q url.Values) analytics.Summary {
			var s analytics.Summary
			srv.get(t, "/api/rollup/summary", q, &s)
			return s
		}
		want := func(q url.Values) analytics.Summary {
			reps := loadRaw(t, st)
			pq := parseQuery(t, q, testNow)
			return bruteSummary(reps, pieces(reps, pq, 0), pq)
		}
		first := map[string]analytics.Summary{}
		for name, q := range map[string]url.Values{"acme": acme, "globex": globex, "all": all} {
			first[name] = summary(q)
			check(t, "first "+name, first[name], want(q))
		}

		// Change globex's domain rollups behind the cache's back: its answer stays cached.
		sabotage := func(delta int) {
			t.Helper()
			for _, table := range []string{"rollup_domain_day", "rollup_domain_month"} {
				err := st.DB().Exec("UPDATE "+table+" SET messages = messages + ? WHERE domain_id = (SELECT id FROM rollup_domains WHERE name = ?)",
					delta, "globex1.example").Error
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		sabotage(1000)
		t.Cleanup(func() { sabotage(-1000) })
		check(t, "cached globex", summary(globex), first["globex"])

		// A new acme report, rolled up: acme's and the all-domain answers change now.
		d := time.Date(2024, 6, 20, 0, 0, 0, 0, time.UTC)
		ids := save(t, st, []store.Parsed{{Header: &dmarc.Report{OrgName: "New Reporter", ReportID: "cache-1", DateBegin: d,
			DateEnd: d.AddDate(0, 0, 1), Policy: dmarc.Policy{Domain: "acme0.example", P: "reject"}},
			Records: []dmarc.Record{rec("192.0.2.99", 4242, "reject", "fail", "fail", "acme0.example")}}})
		if err := ru.Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		for name, q := range map[string]url.Values{"acme": acme, "all": all} {
			got := summary(q)
			if got.TotalMessages != first[name].TotalMessages+4242 || got.TotalReports != first[name].TotalReports+1 {
				t.Errorf("%s after a new report: %d messages in %d reports, want %d in %d", name, got.TotalMessages, got.TotalReports,
					first[name].TotalMessages+4242, first[name].TotalReports+1)
			}
			check(t, name+" after a new report", got, want(q))
		}
		check(t, "globex untouched by acme's report", summary(globex), first["globex"])
	})
}

// countingHandler counts log records by message.
type countingHandler struct {
	slog.Handler
	warn atomic.Int64
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && strings.Contains(r.Message, "cache unavailable") {
		h.warn.Add(1)
	}
	return nil
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }

// With Redis down the answers are still right, and the outage is logged once, not per request.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		addr := "127.0.0.1:1" // nothing listens on port 1
		if !b.Real() {
			m := miniredis.RunT(t)
			addr = m.Addr()
			m.Close()
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		logs := &countingHandler{Handler: slog.DiscardHandler}
		log := slog.New(logs)
		// Applying with the cache down still applies (the invalidation failure is only logged).
		if err := rollup.New(st, gencache.New(rdb, 0, log), log).Apply(ctx, world(t, st, 22, 80)); err != nil {
			t.Fatal(err)
		}
		e := echo.New()
		analytics.New(analytics.Deps{Store: st, Redis: rdb, Log: log, Now: func() time.Time { return testNow }}).RegisterRoutes(e.Group("/api"))
		srv := &server{e: e}
		reps := loadRaw(t, st)
		before := logs.warn.Load()
		for _, q := range []url.Values{{}, {"domain": {"acme0.example"}}, {"days": {"30"}}, {}, {"domain": {"acme0.example"}}} {
			var s analytics.Summary
			srv.get(t, "/api/rollup/summary", q, &s)
			pq := parseQuery(t, q, testNow)
			check(t, "summary with Redis down "+q.Encode(), s, bruteSummary(reps, pieces(reps, pq, 0), pq))
		}
		if before != 1 {
			t.Errorf("rollup maintenance logged the outage %d times, want once", before)
		}
		if n := logs.warn.Load() - before; n != 1 {
			t.Errorf("five requests logged the outage %d times, want once", n)
		}
	})
}

// Many clients asking the same and different questions at once (answers computed once and
// shared, cached or not) all get the right answer.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		if err := newRollup(st).Apply(context.Background(), world(t, st, 23, 80)); err != nil {
			t.Fatal(err)
		}
		opt := b.Redis(t, 10)
		rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
		t.Cleanup(func() { rdb.Close() })
		reps := loadRaw(t, st)
		queries := []url.Values{{}, {"domain": {"acme0.example"}}, {"days": {"30"}}, {"source_ip_range": {"192.0.2.0/24"}}}
		want := make([]analytics.Summary, len(queries))
		for i, q := range queries {
			pq := parseQuery(t, q, testNow)
			want[i] = bruteSummary(reps, pieces(reps, pq, 0), pq)
		}
		for _, cached := range []redis.UniversalClient{nil, rdb} {
			srv := newServer(st, cached, func() time.Time { return testNow })
			var wg sync.WaitGroup
			for g := 0; g < 12; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						k := (g + i) % len(queries)
						var s analytics.Summary
						if status := srv.getRaw(t, "/api/rollup/summary", queries[k], &s); status != http.StatusOK {
							t.Errorf("concurrent summary %s: status %d", queries[k].Encode(), status)
							return
						}
						if !reflect.DeepEqual(s, want[k]) {
							t.Errorf("concurrent summary %s: %+v, want %+v", queries[k].Encode(), s, want[k])
							return
						}
					}
				}()
			}
			wg.Wait()
		}
	})
}
