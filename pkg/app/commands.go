package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
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
	// Uploads are spooled in the data dir: an unwritable one must stop the start, not the
	// first upload.
	if _, err := TempDir(cfg); err != nil {
		return err
	}
	// Bind first: a port in use stops the start here, before anything says it listens or
	// starts work that the failure would then cancel.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: VIGIL_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	mln, err := a.withMetrics(true)
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("vigil api listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(cfg.HTTPAddr), "monitoring", "http://"+displayAddr(cfg.HTTPAddr)+"/monitoring")
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.runHTTP(ctx, ln) })
	g.Go(func() error { return a.serveMetrics(ctx, mln) })
	if !a.Embedded() {
		// A file stored by an api killed before it could enqueue it has no task: enqueue every
		// pending file now (workers do the same when they start, and the embedded worker too).
		go func() {
			if n, err := a.Ingest.RequeuePending(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("start-up re-enqueue of pending files failed; the workers and the sweep will", "err", err)
			} else if n > 0 {
				log.Info("pending files enqueued again at start-up", "files", n)
			}
		}()
	}
	if a.Embedded() {
		log.Info("embedded mode: api, worker and scheduler in one process on SQLite and an in-process Redis; "+
			"set VIGIL_DATABASE_URL and VIGIL_REDIS_URL to run on PostgreSQL and Redis",
			"database", strings.TrimPrefix(DatabaseURL(cfg), "sqlite://"))
		g.Go(func() error { return a.runWorker(ctx) })
		g.Go(func() error { return a.runScheduler(ctx) })
	}
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
	mln, err := a.withMetrics(false)
	if err != nil {
		return err
	}
	log.Info("vigil worker started", "concurrency", cfg.WorkerConcurrency)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.serveMetrics(ctx, mln) })
	g.Go(func() error { return a.runWorker(ctx) })
	return g.Wait()
}

// Scheduler runs the scheduler role alone (one replica).
func Scheduler(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := Build(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	mln, err := a.withMetrics(true)
	if err != nil {
		return err
	}
	log.Info("vigil scheduler started", "sweep_interval", cfg.SweepInterval)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.serveMetrics(ctx, mln) })
	g.Go(func() error { return a.runScheduler(ctx) })
	return g.Wait()
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
	if progress != nil {
		// One line per file would scroll the bar away; the summary names every failed file.
		a.Ingest.LogFilesAt(slog.LevelDebug)
	}
	if inline {
		a.Applier.SetGap(importPassGap)
	}
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

// importPassGap spaces the inline import's rollup passes: an import shorter than this has one
// pass, at its end (its Flush), and a longer one a pass every importPassGap, so its answers
// lag by at most that while it runs. Passes that followed the load (as a worker's do, where an
// upload's files must answer within a second) cost the 20 × 2,286-record import 21% on
// PostgreSQL and 43% on SQLite: the copies' rows, the same sources in the same periods, were
// written in two passes instead of one (docs/performance.md).
const importPassGap = 5 * time.Second

// Exit codes of `api import` (docs/operations.md): scripts tell a clean import from one that
// left files failed or unfinished without parsing the summary.
const (
	ExitOK       = 0 // every file processed, or a duplicate of a processed one
	ExitError    = 1 // the import could not run or stopped (database down, interrupted)
	ExitUsage    = 2 // bad command line
	ExitFailures = 3 // some files failed or are unfinished (see the summary); --accept-failures turns this into 0
)

const importUsage = `usage: api import [--accept-failures] [--no-progress] PATH...

Imports report files and folders (recursive; hidden files skipped) through the pipeline:
inline without VIGIL_REDIS_URL, else through the queue (waiting for the workers). Prints a
summary; exit status 0 when every file was processed or is a duplicate of a processed one,
3 when any failed or is unfinished (stored, processed later), 1 when the import stopped,
2 for a bad command line.

flags:`

// ImportCommand runs `api import` with its command line and returns the exit status. The
// progress bar goes to progress (nil or --no-progress: none), the summary to out.
func ImportCommand(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, progress, out, errOut io.Writer) int {
	fs := flag.NewFlagSet("api import", flag.ContinueOnError)
	fs.SetOutput(errOut)
	accept := fs.Bool("accept-failures", false, "exit 0 even when files failed (they are still listed)")
	quiet := fs.Bool("no-progress", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintln(errOut, importUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(errOut, "api import: no PATH given")
		fs.Usage()
		return ExitUsage
	}
	if *quiet || !terminal(progress) {
		progress = nil
	}
	sum, err := Import(ctx, cfg, log, fs.Args(), progress, out)
	switch {
	case err != nil:
		log.Error("import stopped", "err", err)
		return ExitError
	case !sum.OK() && !*accept:
		return ExitFailures
	}
	return ExitOK
}

// terminal says whether w is a terminal: a bar redrawn ten times a second is for a person,
// not for a log file or a pipe.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return w != nil
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
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
