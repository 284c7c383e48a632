// Package app is the one place that builds Vigil's dependencies from the configuration and
// runs the roles (api, worker, scheduler) and one-shot commands (migrate, import). The cmd
// binaries call into it; everything below receives its dependencies through constructors.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/digest"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/failure"
	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/tlsrpt"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
)

// App holds the built dependencies of one process.
type App struct {
	Cfg       config.Config
	Log       *slog.Logger
	Store     *store.Store
	RedisOpt  asynq.RedisConnOpt // nil when the process runs without Redis (inline import)
	Redis     redis.UniversalClient
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Ingest    *ingest.Service
	Mail      *mailpoll.Service
	Rollup    *rollup.Rollup
	// Applier writes the rollups of the files this process parses (see wireRollups).
	Applier     *rollup.Applier
	stopApplier func() // ends the applier after it applied what it holds
	Enrich      *enrich.Service
	Senders     *senders.Service
	Alerts      *alerting.Service
	ML          *ml.Service
	Notify      *notify.Service
	Analytics   *analytics.API
	Export      *export.Service
	Digest      *digest.Service
	Outbound    *outbound.Policy
	TLSReports  *tlsrpt.Service  // SMTP TLS reports: parsing, storage, API, POST /tlsrpt
	Failures    *failure.Service // DMARC failure reports
	// Auth, Audit and Limiter are built for the api role only (buildAuth).
	Auth     *auth.Service
	Audit    *audit.Log
	Limiter  *ratelimit.Limiter
	mini     *miniredis.Miniredis
	stopMini context.CancelFunc

	Retention *retention.Service
	// Metrics is this process's Prometheus registry (pkg/metrics; see metrics.go).
	Metrics        *metrics.Metrics
	answers        atomic.Pointer[gencache.Cache] // the analytics answer cache, for its counts
	sharedExported bool
}

// Options say what a process needs built.
type Options struct {
	// Migrate applies pending migrations (api on SQLite, `api migrate`); otherwise a stale
	// schema stops the process.
	Migrate bool
	// EmbeddedRedis starts an in-process Redis when VIGIL_REDIS_URL is unset.
	EmbeddedRedis bool
	// NoRedis builds no queue at all (the one-shot import without VIGIL_REDIS_URL).
	NoRedis bool
}

// Build connects the stores. Close releases them.
func Build(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) (*App, error) {
	a := &App{Cfg: cfg, Log: log, Outbound: cfg.Outbound.Policy()}
	if err := a.openStore(ctx, o.Migrate); err != nil {
		return nil, err
	}
	if !o.NoRedis {
		if err := a.openRedis(ctx, o.EmbeddedRedis); err != nil {
			a.Close()
			return nil, err
		}
	}
	var enq ingest.Enqueuer
	if a.Client != nil {
		enq = a.Client
	}
	a.Ingest = ingest.New(a.Store, enq, a.Inspector, IngestLimits(cfg.Limits), log.With("component", "ingest"))
	a.wireReportKinds()
	// A nil *asynq.Client inside the interface would not compare as nil.
	var mailEnq mailpoll.Enqueuer
	if a.Client != nil {
		mailEnq = a.Client
	}
	// One-shot commands without a queue (migrate, the inline import) never seal a password:
	// they use a key that exists and make none.
	keys, err := secretKeys(cfg, !o.NoRedis)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Mail = mailpoll.New(mailpoll.Deps{Store: a.Store, Ingest: a.Ingest, Limits: IngestLimits(cfg.Limits).Unwrap,
		MaxMessageBytes: cfg.Limits.FileBytes, Env: cfg.IMAP.Mailbox, Interval: cfg.IMAP.PollInterval,
		Enqueuer: mailEnq, Keys: keys, TokenDir: cfg.IMAP.TokenDir, Outbound: a.Outbound, Log: log.With("component", "mailpoll")})
	if err := a.Mail.Init(ctx); err != nil {
		a.Close()
		return nil, err
	}
	a.wireAlerts(keys)
	a.wireRollups(ctx)
	a.Retention = retention.New(retention.Deps{Store: a.Store, Cache: gencache.New(a.Redis, a.Cfg.CacheTTL, a.Log),
		Audit: audit.New(a.Store), Policy: RetentionPolicy(cfg.Retention), Log: log.With("component", "retention")})
	if err := a.buildMetrics(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.buildEnrich(); err != nil {
		a.Close()
		return nil, err
	}
	a.buildML()
	a.wireExports()
	return a, nil
}

// wireReportKinds builds the services of the other report kinds and routes their payloads in
// the pipeline to them (by content, as pkg/unwrap classifies them).
func (a *App) wireReportKinds() {
	r := a.Cfg.Reports
	a.TLSReports = tlsrpt.New(tlsrpt.Deps{Store: a.Store, Ingest: a.Ingest, Limits: tlsrpt.Limits{MaxBytes: r.TLSRPTMaxDecompressed},
		MaxBodyBytes: r.TLSRPTMaxBytes, Log: a.Log.With("component", "tlsrpt")})
	a.Failures = failure.New(failure.Deps{Store: a.Store, Redact: r.FailureRedact, Log: a.Log.With("component", "failure")})
	a.Ingest.HandleKindBatch(unwrap.FormatTLSRPT, a.TLSReports.KindBatch())
	a.Ingest.HandleKind(unwrap.FormatFailure, a.Failures.HandlePart)
}

// wireAlerts builds alert evaluation and delivery. Both record audit entries in the store's
// audit log (the api role's handlers write there).
func (a *App) wireAlerts(keys *secretbox.Keyring) {
	var q alerting.Enqueuer
	if a.Client != nil {
		q = a.Client
	}
	al := audit.New(a.Store)
	a.Alerts = alerting.New(alerting.Deps{Store: a.Store, Queue: q, Audit: al, Log: a.Log.With("component", "alerting")})
	a.Notify = notify.New(notify.Deps{Store: a.Store, Alerts: a.Alerts, Keys: keys, Policy: a.Outbound, Audit: al,
		SMTP: a.smtpConfig(),
		Log:  a.Log.With("component", "notify"), OnFirstChannel: a.Alerts.AdoptDefaults})
}

// wireExports builds the rollup answers (shared by the API and the renderers), the exports
// and the digests. Digests mail through the SMTP settings of alert e-mail.
func (a *App) wireExports() {
	a.Analytics = analytics.New(analytics.Deps{Store: a.Store, Redis: a.Redis, CacheTTL: a.Cfg.CacheTTL,
		Log: a.Log.With("component", "analytics"), Describe: a.Enrich.Describe})
	var q export.Enqueuer
	var dq digest.Enqueuer
	if a.Client != nil {
		q, dq = a.Client, a.Client
	}
	a.Export = export.New(export.Deps{Store: a.Store, Analytics: a.Analytics, Queue: q, Dir: a.Cfg.Export.Dir,
		RowLimit: a.Cfg.Export.RowLimit, Retention: a.Cfg.Export.Retention, Log: a.Log.With("component", "export")})
	a.Digest = digest.New(digest.Deps{Store: a.Store, Export: a.Export, Queue: dq, SMTP: a.smtpConfig(),
		Log: a.Log.With("component", "digest")})
}

// smtpConfig is the one mail server configuration (VIGIL_SMTP_*) alerts and digests share.
func (a *App) smtpConfig() notify.SMTPConfig {
	return notify.SMTPConfig{Host: a.Cfg.SMTP.Host, Port: a.Cfg.SMTP.Port, Username: a.Cfg.SMTP.Username,
		Password: a.Cfg.SMTP.Password, From: a.Cfg.SMTP.From, TLS: a.Cfg.SMTP.TLS}
}

// wireRollups keeps the analytics rollups up to date: the process that parses a file (a worker,
// the embedded api, the inline import) hands it to its one rollup writer, which applies every
// file handed over since its last pass at once (rollup.Applier; docs/architecture.md says why
// not a task per file). Close applies what it still holds.
func (a *App) wireRollups(ctx context.Context) {
	log := a.Log.With("component", "rollup")
	a.Rollup = rollup.New(a.Store, gencache.New(a.Redis, a.Cfg.CacheTTL, log), log)
	if a.Client != nil {
		// An alert check for the domains whose rollups changed; applies of the same minute and
		// domains share one (TaskID). A lost enqueue is caught by the hourly check.
		a.Rollup.OnApplied(func(ctx context.Context, domains []string) {
			t, err := tasks.NewAlertCheckDomainsTask(domains, time.Now())
			if err == nil {
				_, err = a.Client.EnqueueContext(ctx, t)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				log.Warn("alert check not enqueued after rollup apply", "domains", len(domains), "err", err)
			}
			// The sender rollup of those domains is stale now (answered from the per-source
			// rollups until the run rebuilds it).
			if a.Senders != nil {
				a.Senders.Kick(ctx)
			}
		})
	}
	a.Applier = a.Rollup.NewApplier()
	a.Ingest.OnNewReports(a.Applier.Add)
	if a.Client != nil {
		// Enrichment follows each rollup pass on its own low-priority queue; failing to
		// enqueue it costs nothing but a wait for the weekly refresh (or an admin's back-fill).
		a.Applier.OnPass(func(ctx context.Context, ids []int64) {
			ts, err := tasks.NewEnrichIngestTasks(ids)
			for _, t := range ts {
				if _, err = a.Client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
					break
				}
				err = nil
			}
			if err != nil {
				log.Warn("enqueue enrichment", "ingests", len(ids), "err", err)
			}
		})
	}
	// Its own lifetime: the roles' context ends before their last files are handed over.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Applier.Run(actx, a.Cfg.ShutdownTimeout)
	}()
	a.stopApplier = func() {
		cancel()
		<-done
	}
}

// RetentionPolicy maps the configured retention onto the purge's policy.
func RetentionPolicy(r config.Retention) retention.Policy {
	return retention.Policy{Reports: r.Reports, Domains: r.Domains, Files: r.Files, Rollups: r.Rollups, Audit: r.Audit,
		Batch: r.Batch, DryRun: r.DryRun}
}

// IngestLimits maps the configured limits onto the pipeline's.
func IngestLimits(l config.Limits) ingest.Limits {
	return ingest.Limits{
		FileBytes: l.FileBytes,
		Unwrap: unwrap.Limits{
			MaxInputBytes: l.FileBytes, MaxDecompressedBytes: l.DecompressedBytes, MaxTotalBytes: 2 * l.DecompressedBytes,
			MaxRatio: l.DecompressionRatio, RatioFloorBytes: 10 << 20, MaxEntries: l.ArchiveEntries,
			MaxDepth: l.Nesting, MaxMessageDepth: 3,
		},
		Parse:       dmarc.Limits{MaxDepth: l.XMLDepth, MaxTokenBytes: l.XMLTokenBytes, MaxRecords: l.Records, MaxCount: l.RecordCount},
		MaxAttempts: l.ParseAttempts,
	}
}

// DatabaseURL is the configured database, or the embedded SQLite file in the data dir.
func DatabaseURL(cfg config.Config) string {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL
	}
	return "sqlite://" + filepath.Join(cfg.DataDir, "vigil.db")
}

func (a *App) openStore(ctx context.Context, migrate bool) error {
	st, err := store.Open(ctx, DatabaseURL(a.Cfg), a.Log.With("component", "store"))
	if err != nil {
		return err
	}
	a.Store = st
	if migrate {
		if _, err := st.Migrate(ctx); err != nil {
			return err
		}
		return nil
	}
	return st.CheckSchema(ctx)
}

func (a *App) openRedis(ctx context.Context, embedded bool) error {
	if a.Cfg.RedisURL == "" {
		if !embedded {
			return fmt.Errorf("%w: VIGIL_REDIS_URL is not set: a worker or scheduler needs the Redis that the api enqueues to (only `api` runs an embedded one)", config.ErrInvalid)
		}
		return a.startMiniRedis()
	}
	opt, err := asynq.ParseRedisURI(a.Cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("%w: VIGIL_REDIS_URL: %v", config.ErrInvalid, err)
	}
	a.RedisOpt = opt
	a.Redis = opt.MakeRedisClient().(redis.UniversalClient)
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: connect: %w", err)
	}
	if err := checkEviction(ctx, a.Redis, a.Log); err != nil {
		return err
	}
	a.Client = asynq.NewClient(opt)
	a.Inspector = asynq.NewInspector(opt)
	return nil
}

// checkEviction refuses a Redis that may evict keys: an evicted lease or task key silently
// loses work (SECURITY-CASES C.25). Managed Redis that forbids CONFIG is let through with a note.
func checkEviction(ctx context.Context, r redis.UniversalClient, log *slog.Logger) error {
	res, err := r.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		log.Warn("cannot read Redis maxmemory-policy; make sure it is noeviction", "err", err)
		return nil
	}
	if p, ok := res["maxmemory-policy"]; ok && p != "noeviction" {
		return fmt.Errorf("redis: maxmemory-policy is %q; Vigil needs noeviction so queued tasks are never dropped (CONFIG SET maxmemory-policy noeviction)", p)
	}
	return nil
}

// startMiniRedis runs the in-process Redis of the embedded default. miniredis only ages keys
// when told to, so a ticker moves its clock with the wall clock. It listens on loopback, where
// every local user can connect, so it asks for a password generated at each start and known to
// this process only: no one else can read or clear the login counters or enqueue tasks.
func (a *App) startMiniRedis() error {
	m := miniredis.NewMiniRedis()
	password := rand.Text()
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("embedded redis: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	a.mini, a.stopMini = m, cancel
	opt := asynq.RedisClientOpt{Addr: m.Addr(), Password: password}
	a.RedisOpt = opt
	a.Redis = redis.NewClient(&redis.Options{Addr: m.Addr(), Password: password})
	a.Client = asynq.NewClient(opt)
	a.Inspector = asynq.NewInspector(opt)
	return nil
}

// Embedded reports whether this process runs its own Redis.
func (a *App) Embedded() bool { return a.mini != nil }

// Close releases everything Build opened.
func (a *App) Close() {
	if a.stopApplier != nil {
		a.stopApplier()
		a.stopApplier = nil
	}
	if a.Client != nil {
		a.Client.Close()
	}
	if a.Inspector != nil {
		a.Inspector.Close()
	}
	if a.Redis != nil {
		a.Redis.Close()
	}
	if a.mini != nil {
		a.stopMini()
		a.mini.Close()
	}
	if a.Store != nil {
		a.Store.Close()
	}
}

// TempDir is where uploads are spooled: inside the data dir, so it is on a real disk.
func TempDir(cfg config.Config) (string, error) {
	d := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(d, 0o750); err != nil {
		return "", fmt.Errorf("%w: VIGIL_DATA_DIR %s must be writable by the user running vigil (uid %d): %w", config.ErrInvalid, cfg.DataDir, os.Getuid(), err)
	}
	return d, nil
}
