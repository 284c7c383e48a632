package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/importer"
)

func sqliteConfigured(cfg config.Config) bool {
	return cfg.DatabaseURL == "" || strings.HasPrefix(cfg.DatabaseURL, "sqlite://")
}

// Serve runs the api role. Without VIGIL_REDIS_URL it also runs the worker and scheduler in
// this process on an in-process Redis (the embedded default), since nothing else could.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := Build(ctx, cfg, log, Options{Migrate: sqliteConfigured(cfg), EmbeddedRedis: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.buildAuth(); err != nil {
		return err
	}
	if err := a.bootstrapAdmin(ctx); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.runHTTP(ctx) })
	if a.Embedded() {
		log.Info("embedded mode: api, worker and scheduler in one process on SQLite and an in-process Redis; "+
			"set VIGIL_DATABASE_URL and VIGIL_REDIS_URL to run on PostgreSQL and Redis",
			"database", strings.TrimPrefix(DatabaseURL(cfg), "sqlite://"))
		// The in-process Redis starts empty: files left pending by the last run are re-enqueued now.
		if n, err := a.Ingest.Sweep(ctx, 0); err != nil {
			log.Warn("start-up sweep failed", "err", err)
		} else if n > 0 {
			log.Info("re-enqueued files left pending by the previous run", "count", n)
		}
		g.Go(func() error { return a.runWorker(ctx) })
		g.Go(func() error { return a.runScheduler(ctx) })
	}
	log.Info("vigil api listening", "addr", cfg.HTTPAddr, "url", "http://"+displayAddr(cfg.HTTPAddr), "monitoring", "http://"+displayAddr(cfg.HTTPAddr)+"/monitoring")
	return g.Wait()
}

func displayAddr(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "localhost" + addr
	}
	return addr
}

// Worker runs the worker role alone.
func Worker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := Build(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	log.Info("vigil worker started", "concurrency", cfg.WorkerConcurrency)
	return a.runWorker(ctx)
}

// Scheduler runs the scheduler role alone (one replica).
func Scheduler(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := Build(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	log.Info("vigil scheduler started", "sweep_interval", cfg.SweepInterval)
	return a.runScheduler(ctx)
}

// Migrate applies pending migrations and says how many ran.
func Migrate(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) error {
	a, err := Build(ctx, cfg, log, Options{Migrate: true, NoRedis: true})
	if err != nil {
		return err
	}
	a.Close()
	fmt.Fprintln(out, "database schema is up to date")
	return nil
}

// Import back-fills files and folders. With VIGIL_REDIS_URL the files are enqueued for the
// workers and this waits for them; without it, this process parses them itself.
func Import(ctx context.Context, cfg config.Config, log *slog.Logger, paths []string, progress, out io.Writer) (importer.Summary, error) {
	inline := cfg.RedisURL == ""
	a, err := Build(ctx, cfg, log, Options{Migrate: sqliteConfigured(cfg), NoRedis: inline})
	if err != nil {
		return importer.Summary{}, err
	}
	defer a.Close()
	// Inline, the import plays the worker: as many batches in flight as a worker runs tasks,
	// so the database's round trips overlap (2 on 2 cores only just made 2,000 reports/s).
	im := &importer.Importer{Ingest: a.Ingest, Store: a.Store, Inline: inline, Concurrency: cfg.WorkerConcurrency,
		MaxFile: cfg.Limits.FileBytes, Progress: progress}
	sum, err := im.Run(ctx, paths)
	if inline {
		// What was imported answers queries when the command returns.
		if ferr := a.Applier.Flush(ctx); ferr != nil && err == nil {
			err = fmt.Errorf("import: rollups: %w", ferr)
		}
	}
	sum.Print(out)
	return sum, err
}

// Healthcheck asks this host's api for /health; container images have no curl.
func Healthcheck(ctx context.Context, cfg config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+displayAddr(cfg.HTTPAddr)+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s", resp.Status)
	}
	return nil
}
