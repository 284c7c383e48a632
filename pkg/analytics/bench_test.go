package analytics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Benchmarks of the rollup endpoints on synthetic data (pkg/synth), reporting latency
// percentiles per endpoint, uncached and cached, for a one-year all-domain query, a
// single-domain one and IP-filtered ones.
//
//	VIGIL_BENCH_REPORTS=N          reports to generate per backend (default 2000, about 20,000
//	                               records); embedded SQLite, and PostgreSQL + Redis when the
//	                               VIGIL_TEST_* variables are set
//	VIGIL_BENCH_DATABASE_URL=URL   instead, use a database already filled by vigil-synth
//	                               (make bench-data) as it is; cached runs use the test Redis
//	                               (VIGIL_TEST_REDIS_URL, db 10) or an in-process one
//	VIGIL_BENCH_FULL=1             also measure IP and CIDR filters on generated data
//
// Run: make bench PKGS=./pkg/analytics BENCH=Rollup COUNT=1 BENCHTIME=30x

// benchEnv is one data set the benchmarks query.
type benchEnv struct {
	name    string
	st      *store.Store
	rdb     redis.UniversalClient
	now     time.Time // the data's last day: "days=365" covers it
	domain  string    // the domain with most messages
	topIP   string    // the source with most messages
	records int64
}

var (
	benchMu       sync.Mutex
	benchEnvs     map[string]*benchEnv
	benchCleanups []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(benchCleanups) - 1; i >= 0; i-- {
		benchCleanups[i]()
	}
	os.Exit(code)
}

// environments builds (once per process) the data sets to benchmark on.
func environments(b *testing.B) []*benchEnv {
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchEnvs == nil {
		benchEnvs = map[string]*benchEnv{}
		if dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL"); dsn != "" {
			benchEnvs["external"] = external(b, dsn)
		} else {
			for _, be := range testenv.Backends() {
				benchEnvs[be.Name] = generated(b, be)
			}
		}
	}
	var out []*benchEnv
	for _, e := range benchEnvs {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *benchEnv) int { return len(a.name) - len(b.name) })
	return out
}

func benchRedis(b *testing.B) redis.UniversalClient {
	if u := os.Getenv("VIGIL_TEST_REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			b.Fatal(err)
		}
		opt.DB = 10
		c := redis.NewClient(opt)
		c.FlushDB(context.Background())
		benchCleanups = append(benchCleanups, func() { c.Close() })
		return c
	}
	m, err := miniredis.Run()
	if err != nil {
		b.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	benchCleanups = append(benchCleanups, func() { c.Close(); m.Close() })
	return c
}

func external(b *testing.B, dsn string) *benchEnv {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	benchCleanups = append(benchCleanups, func() { st.Close() })
	if n, err := rollup.New(st, nil, testenv.Logger()).CatchUp(ctx, 1000); err != nil || n > 0 {
		b.Fatalf("rollups of %s are not up to date (%d reports behind, %v): run vigil-synth to the end", dsn, n, err)
	}
	return describe(b, &benchEnv{name: string(st.Dialect()), st: st, rdb: benchRedis(b)})
}

func generated(b *testing.B, be testenv.Backend) *benchEnv {
	ctx := context.Background()
	reports := 2000
	if v := os.Getenv("VIGIL_BENCH_REPORTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("VIGIL_BENCH_REPORTS=%q: want a positive whole number", v)
		}
		reports = n
	}
	st, err := store.Open(ctx, benchDatabase(b, be), testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	benchCleanups = append(benchCleanups, func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	g := synth.New(synth.Config{Seed: 42, Domains: min(100, max(5, reports/10000)), Sources: min(50000, max(500, reports/20)),
		Reporters: 30, Days: 365, Reports: reports, RecordsPerReport: 10, MultiDayShare: 0.05, IPv6Share: 0.15, End: dataEnd})
	start := time.Now()
	s, err := synth.Write(ctx, st, g, 2, nil)
	if err != nil {
		b.Fatal(err)
	}
	ru := rollup.New(st, nil, testenv.Logger())
	applyStart := time.Now()
	for {
		n, err := ru.CatchUp(ctx, 10000)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	b.Logf("%s: %d reports, %d records stored in %v, rolled up in %v", be.Name, s.Reports, s.Records,
		applyStart.Sub(start).Round(time.Millisecond), time.Since(applyStart).Round(time.Millisecond))
	name := "sqlite"
	if be.Real() {
		name = "postgres"
	}
	return describe(b, &benchEnv{name: name, st: st, rdb: benchRedis(b)})
}

// benchDatabase is a database for the process's benchmarks: a schema of the test PostgreSQL
// or a SQLite file, dropped or removed when the process ends (benchmarks outlive one b).
func benchDatabase(b *testing.B, be testenv.Backend) string {
	if !be.Real() {
		dir, err := os.MkdirTemp("", "vigil-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchCleanups = append(benchCleanups, func() { os.RemoveAll(dir) })
		return "sqlite://" + filepath.Join(dir, "vigil.db")
	}
	base := os.Getenv("VIGIL_TEST_DATABASE_URL")
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	schema := fmt.Sprintf("bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		b.Fatal(err)
	}
	benchCleanups = append(benchCleanups, func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		if db, err := admin.DB(); err == nil {
			db.Close()
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// describe finds the data's last day, biggest domain and biggest source.
func describe(b *testing.B, e *benchEnv) *benchEnv {
	db := e.st.DB()
	var last struct{ P int32 }
	if err := db.Raw("SELECT MAX(period) AS p FROM rollup_all_day").Scan(&last).Error; err != nil || last.P == 0 {
		b.Fatalf("no rollups in the benchmark database (%v)", err)
	}
	e.now = rollup.DayTime(last.P).Add(12 * time.Hour)
	var dom struct{ Name string }
	db.Raw(`SELECT d.name FROM rollup_domain_month m JOIN rollup_domains d ON d.id = m.domain_id
		GROUP BY d.name ORDER BY SUM(m.messages) DESC LIMIT 1`).Scan(&dom)
	var ip struct{ IP []byte }
	db.Raw(`SELECT i.ip FROM rollup_src_month m JOIN rollup_ips i ON i.id = m.ip_id GROUP BY i.ip ORDER BY SUM(m.messages) DESC LIMIT 1`).Scan(&ip)
	db.Raw(`SELECT COUNT(*) FROM records`).Scan(&e.records)
	e.domain, e.topIP = dom.Name, netip.AddrFrom16([16]byte(ip.IP)).Unmap().String()
	b.Logf("%s: %d records; data to %s; biggest domain %s, biggest source %s", e.name, e.records, e.now.Format(time.DateOnly), e.domain, e.topIP)
	return e
}

var benchEndpoints = []struct{ name, path, extra string }{
	{"summary", "/api/rollup/summary", ""},
	{"sources", "/api/rollup/sources", "limit=10"},
	{"alignment", "/api/rollup/alignment", ""},
	{"breakdown", "/api/rollup/alignment-breakdown", ""},
	{"timeline", "/api/rollup/timeline", "interval=day"},
	{"timeline-month", "/api/rollup/timeline", "interval=month"},
	{"failure-trend", "/api/rollup/failure-trend", ""},
	{"top-organizations", "/api/rollup/top-organizations", "limit=10"},
	{"policy", "/api/rollup/policy", ""},
}

// scopes are the filters each endpoint is measured under, all over one year: all domains and
// the biggest domain, and with VIGIL_BENCH_FULL=1 or a filled database (VIGIL_BENCH_DATABASE_URL)
// also the biggest source and its /16 (/48), so a plain make bench stays short.
func (e *benchEnv) scopes() []struct{ name, query string } {
	out := []struct{ name, query string }{
		{"all-domains", "days=365"},
		{"one-domain", "days=365&domain=" + url.QueryEscape(e.domain)},
	}
	if os.Getenv("VIGIL_BENCH_FULL") == "" && os.Getenv("VIGIL_BENCH_DATABASE_URL") == "" {
		return out
	}
	prefix := netip.PrefixFrom(netip.MustParseAddr(e.topIP), 16)
	if prefix.Addr().Is6() {
		prefix = netip.PrefixFrom(prefix.Addr(), 48)
	}
	// Mid-year: about eight months from the middle of a dekad to the middle of another, so the
	// planner cannot answer with whole years or quarters alone (issue 3 timed whole years).
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month()-10, 14, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	to := time.Date(now.Year(), now.Month()-2, 17, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	mid := "start=" + from + "&end=" + to
	return append(out,
		struct{ name, query string }{"source-ip", "days=365&source_ip=" + url.QueryEscape(e.topIP)},
		struct{ name, query string }{"cidr", "days=365&source_ip_range=" + url.QueryEscape(prefix.Masked().String())},
		struct{ name, query string }{"mid-year-all-domains", mid},
		struct{ name, query string }{"mid-year-one-domain", mid + "&domain=" + url.QueryEscape(e.domain)})
}

// measure issues b.N requests and reports their latency percentiles.
func measure(b *testing.B, h http.Handler, target string) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", target, rec.Code, rec.Body.String())
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func newBenchHandler(e *benchEnv, cached bool) http.Handler {
	return newBenchServer(e, cached, false)
}

// newBenchServer is the analytics API, with the API's request metrics (pkg/metrics, the same
// middleware pkg/httpapi installs) when instrumented, to measure what they cost.
func newBenchServer(e *benchEnv, cached, instrumented bool) http.Handler {
	var rdb redis.UniversalClient
	if cached {
		rdb = e.rdb
	}
	s := newServer(e.st, rdb, func() time.Time { return e.now })
	if instrumented {
		s.e.Use(metrics.New().Echo)
	}
	return s.e
}

// BenchmarkRollupEndpoints: every endpoint × scope, uncached (straight from the rollups) and
// cached (Redis).
func BenchmarkRollupEndpoints(b *testing.B) {
	for _, e := range environments(b) {
		uncached, cached := newBenchHandler(e, false), newBenchHandler(e, true)
		for _, sc := range e.scopes() {
			for _, ep := range benchEndpoints {
				target := ep.path + "?" + sc.query
				if ep.extra != "" {
					target += "&" + ep.extra
				}
				b.Run(fmt.Sprintf("%s/%s/%s/uncached", e.name, sc.name, ep.name), func(b *testing.B) { measure(b, uncached, target) })
				if sc.name == "all-domains" || sc.name == "one-domain" {
					b.Run(fmt.Sprintf("%s/%s/%s/cached", e.name, sc.name, ep.name), func(b *testing.B) {
						rec := httptest.NewRecorder()
						cached.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil)) // fill
						measure(b, cached, target)
					})
				}
			}
		}
	}
}

// BenchmarkRollupConcurrent: 200 clients over loopback HTTP on a mix of endpoints and scopes,
// cached as in production; reports requests/s and latency percentiles. cold starts with an
// empty cache (every answer computed once, concurrent askers waiting for it), warm with every
// answer cached.
func BenchmarkRollupConcurrent(b *testing.B) {
	const clients = 200
	for _, e := range environments(b) {
		for _, warm := range []bool{false, true} {
			name := e.name + "/cold"
			if warm {
				name = e.name + "/warm"
			}
			b.Run(name, func(b *testing.B) { concurrent(b, e, clients, warm) })
		}
	}
}

func concurrent(b *testing.B, e *benchEnv, clients int, warm bool) {
	if err := e.rdb.FlushDB(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(newBenchHandler(e, true))
	defer srv.Close()
	l := newLoad(b, e, srv.URL, clients, warm)
	b.ResetTimer()
	elapsed, lat := l.run(b, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	reportPercentiles(b, lat)
}

// load is the 200-client mix: every endpoint on the first two scopes, in turn.
type load struct {
	client  *http.Client
	targets []string
	clients int
}

// newLoad readies the mix against base, each answer fetched once first when warm.
func newLoad(b *testing.B, e *benchEnv, base string, clients int, warm bool) load {
	var targets []string
	for _, sc := range e.scopes()[:2] {
		for _, ep := range benchEndpoints {
			targets = append(targets, base+ep.path+"?"+sc.query+"&"+ep.extra)
		}
	}
	l := load{client: &http.Client{Transport: &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}},
		targets: targets, clients: clients}
	if warm {
		for _, target := range targets {
			resp, err := l.client.Get(target)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return l
}

// run sends n requests from l.clients concurrent clients and returns the time they took
// and each one's latency.
func (l load) run(b *testing.B, n int) (time.Duration, []time.Duration) {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	var wg sync.WaitGroup
	next := make(chan string)
	start := time.Now()
	for c := 0; c < l.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for target := range next {
				t0 := time.Now()
				resp, err := l.client.Get(target)
				if err != nil {
					b.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("%s: %d", target, resp.StatusCode)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	for i := 0; i < n; i++ {
		next <- l.targets[i%len(l.targets)]
	}
	close(next)
	wg.Wait()
	return time.Since(start), lat
}
