package app_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/enrich/dnstest"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Redis database of the worker-pools test on the real server (block 48–51, ingest speed).
const redisDBPools = 49

// TestUploadNotHeldByEnrichment: a worker whose enrichment waits on a resolver that does not
// answer still processes an uploaded file. Each queue has its own slots (one asynq server per
// queue); with one server for every queue, the enrich:ips task holding the only slot kept the
// file pending until the lookups timed out.
func TestUploadNotHeldByEnrichment(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		dns := dnstest.Start(t)
		release := dns.Hold(t)
		env := map[string]string{"VIGIL_DNS_RESOLVER": dns.Addr, "VIGIL_DNS_TIMEOUT": "5m", "VIGIL_WORKER_CONCURRENCY": "1"}
		if b.Real() {
			env["VIGIL_DATABASE_URL"], env["VIGIL_REDIS_URL"] = b.DatabaseURL(t), b.RedisURL(t, redisDBPools)
		}
		cfg := testConfig(t, env)
		log := testenv.Logger()
		var c api
		if b.Real() {
			if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
				t.Fatal(err)
			}
			run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
			waitHTTP(t, "http://"+cfg.HTTPAddr)
			c = login(t, "http://"+cfg.HTTPAddr, "root@example.com", adminPassword)
		} else {
			logs := &syncBuffer{}
			run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, jsonLogger(logs)) })
			waitHTTP(t, "http://"+cfg.HTTPAddr)
			c = login(t, "http://"+cfg.HTTPAddr, config.DefaultAdminEmail, generatedPassword(t, cfg, logs))
		}
		// The first file's sources go to enrichment, whose lookups the resolver holds.
		first := upload(t, c, corpusFiles(t, "mox/testdata/dmarc-reports/google.eml"))
		if first["google.eml"]["status"] != "processed" {
			t.Fatalf("first file: %v", first["google.eml"])
		}
		for deadline := time.Now().Add(time.Minute); dns.Queries.Load() == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no enrichment lookup reached the resolver within a minute")
			}
		}
		// An enrich:ips task is now running, holding its queue's one slot: the next file is
		// still processed (upload fails the test if it stays pending for 30 s).
		second := upload(t, c, corpusFiles(t, "mox/testdata/dmarc-reports/yahoo.eml"))
		if second["yahoo.eml"]["status"] != "processed" {
			t.Fatalf("second file: %v", second["yahoo.eml"])
		}
		release()
	})
}
