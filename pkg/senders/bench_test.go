package senders_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkSendersQuery measures GET /api/senders and GET /analytics/geolocation/map (all
// domains, the last 365 days; neither is cached) on a database filled by `make bench-data`
// (VIGIL_BENCH_DATABASE_URL, PostgreSQL). Sources without an enrichment row get a synthetic one
// first (base domain among 500, AS among 300, country among 676), so the join and grouping cost
// what they would with every source enriched. Each endpoint is timed twice: answered from the
// per-source rollups (the sender rollup not built: as while it is stale), then from the sender
// rollup after a full Rebuild (its time is logged). Reports the median and p95 latency.
//
//	make bench-data REPORTS=100000 DATABASE=postgres://…/vigil_bench
//	VIGIL_BENCH_DATABASE_URL=postgres://…/vigil_bench make bench PKGS=./pkg/senders BENCH=SendersQuery BENCHTIME=20x COUNT=1
func BenchmarkSendersQuery(b *testing.B) {
	dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL")
	if dsn == "" {
		b.Skip("set VIGIL_BENCH_DATABASE_URL to a database filled by make bench-data")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	err = st.DB().Exec(`INSERT INTO enrich_ips (ip, ptr, base_domain, asn, as_org, country, country_name, dns_status, dns_expires, geo_expires, updated_at)
		SELECT ip, 'mx' || id || '.d' || (id % 500) || '.example', 'd' || (id % 500) || '.example', 64500 + id % 300, 'AS' || (id % 300),
		chr(65 + id % 26) || chr(65 + (id / 26) % 26), 'C' || (id % 676), 'ok', 4102444800, 4102444800, 0 FROM rollup_ips
		ON CONFLICT (ip) DO NOTHING`).Error
	if err != nil {
		b.Fatal(err)
	}
	sv, e := sendersServer(b, st)
	start := time.Now()
	sync, err := sv.Sync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("sync: %d sources in %v", sync.Sources, time.Since(start))
	// Whatever a previous run built is dropped, so the first pass reads the per-source path.
	if err := st.DB().Exec("DELETE FROM rollup_sender_state").Error; err != nil {
		b.Fatal(err)
	}
	run := func(stage string) {
		for _, path := range []string{"/api/senders?days=365", "/analytics/geolocation/map?days=365"} {
			b.Run(stage+path, func(b *testing.B) {
				var lat []time.Duration
				for i := 0; i < b.N; i++ {
					rec := httptest.NewRecorder()
					start := time.Now()
					e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
					lat = append(lat, time.Since(start))
					if rec.Code != http.StatusOK {
						b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
					}
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[(len(lat)*95+99)/100-1].Microseconds())/1000, "p95-ms")
			})
		}
	}
	run("per-source")
	start = time.Now()
	rb, err := sv.Rebuild(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("rebuild: %d domains in %v", rb.Domains, time.Since(start))
	run("sender-rollup")
}

// BenchmarkSendersList times the whole handlers (echo, no network) of /api/senders?days=365
// (all domains) at its first page and at page 100, and of /analytics/geolocation/map?days=365,
// in turn, request by request, on a database BenchmarkSendersQuery has prepared (sender rollup
// built; nothing is rebuilt here, so two builds of the code can be run alternately on it).
// Reports each path's median and p95.
//
//	VIGIL_BENCH_DATABASE_URL=… make bench PKGS=./pkg/senders BENCH=SendersList BENCHTIME=10x COUNT=3
func BenchmarkSendersList(b *testing.B) {
	dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL")
	if dsn == "" {
		b.Skip("set VIGIL_BENCH_DATABASE_URL to a database prepared by BenchmarkSendersQuery")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var built, domains int64
	if err := st.DB().Raw("SELECT (SELECT COUNT(*) FROM rollup_sender_state), (SELECT COUNT(*) FROM rollup_domains)").Row().Scan(&built, &domains); err != nil {
		b.Fatal(err)
	}
	if built <= domains {
		b.Fatalf("sender rollup built for %d of %d domains and all: run BenchmarkSendersQuery first", built, domains)
	}
	_, e := sendersServer(b, st)
	paths := []string{"/api/senders?days=365", "/api/senders?days=365&page=100", "/analytics/geolocation/map?days=365"}
	names := []string{"senders", "senders-page100", "map"}
	lat := make([][]time.Duration, len(paths))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, path := range paths {
			rec := httptest.NewRecorder()
			start := time.Now()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			lat[j] = append(lat[j], time.Since(start))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
			}
		}
	}
	b.StopTimer()
	for j, l := range lat {
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, names[j]+"-p50-ms")
		b.ReportMetric(float64(l[(len(l)*95+99)/100-1].Microseconds())/1000, names[j]+"-p95-ms")
	}
}

// sendersServer serves the sender and geolocation routes on st, as the api does (no HTTP
// listener, no guard).
func sendersServer(b *testing.B, st *store.Store) (*senders.Service, *echo.Echo) {
	b.Helper()
	sv, err := senders.New(st, testenv.Logger())
	if err != nil {
		b.Fatal(err)
	}
	an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()})
	sapi := senders.NewAPI(sv, an)
	e := echo.New()
	for _, r := range sapi.Routes() {
		e.Add(r.Method, r.Path, r.Handler)
	}
	for _, r := range enrich.NewAPI(enrich.New(enrich.Deps{Store: st, Log: testenv.Logger()}), an).WithSenders(sapi).Routes() {
		e.Add(r.Method, r.Path, r.Handler)
	}
	return sv, e
}
