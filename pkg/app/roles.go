package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/logging"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/schedule"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/web"
	"github.com/vigilhq/vigil/tasks"
)

// Jobs are the periodic jobs the scheduler ticks.
func (a *App) Jobs() []schedule.Job {
	jobs := []schedule.Job{
		{Name: tasks.TypeIngestSweep, Interval: a.Cfg.SweepInterval, Build: tasks.NewIngestSweepTask},
		{Name: tasks.TypeRollupCatchUp, Interval: a.Cfg.SweepInterval, Build: tasks.NewRollupCatchUpTask},
		{Name: tasks.TypeEnrichRefresh, Interval: a.Cfg.Enrich.RefreshInterval, Build: tasks.NewEnrichRefreshTask},
		{Name: tasks.TypeSendersRollup, Interval: a.Cfg.Enrich.SenderRollupInterval, Build: tasks.NewSendersRollupTask},
		{Name: tasks.TypeAlertCheck, Interval: time.Hour, Build: tasks.NewAlertCheckTask},
		{Name: tasks.TypeExportCleanup, Interval: time.Hour, Build: tasks.NewExportCleanupTask},
		{Name: tasks.TypeDigestDispatch, Interval: a.Cfg.Export.DigestInterval, Build: tasks.NewDigestDispatchTask},
	}
	jobs = append(jobs, a.mlJobs()...)
	if a.Cfg.Retention.Enabled() {
		jobs = append(jobs, schedule.Job{Name: tasks.TypeRetentionPurge, Interval: a.Cfg.Retention.Interval, Build: tasks.NewRetentionPurgeTask})
	}
	return append(jobs, a.Mail.Jobs()...)
}

// NewWorker builds the worker's asynq servers, one per queue, and the handlers they share.
// Each server has its own VIGIL_WORKER_CONCURRENCY slots: with one server for all queues, four
// enrich:ips tasks waiting on a resolver that times out (or four large exports) held every
// slot, and an uploaded file waited for them (seen: 10 s for a file uploaded to an idle
// worker); weights only pick among tasks for a free slot.
func (a *App) NewWorker() ([]*asynq.Server, *asynq.ServeMux) {
	log := a.Log.With("component", "worker")
	var srvs []*asynq.Server
	for _, q := range slices.Sorted(maps.Keys(tasks.Queues())) {
		// asynq polls Redis (no blocking pop): an idle server sleeps half to one and a half
		// intervals between looks, so at asynq's 1 s default a file uploaded to an idle
		// platform waited a second on average before a worker took it. Files are looked for
		// every VIGIL_WORKER_POLL_INTERVAL; the other queues, whose tasks are not waited on
		// by a person within the second, keep asynq's 1 s (each look runs a Lua script: in
		// the embedded Redis, 0.5 ms of the process's CPU).
		poll := a.Cfg.WorkerPoll
		if q != tasks.QueueIngest {
			poll = max(poll, time.Second)
		}
		srvs = append(srvs, asynq.NewServer(a.RedisOpt, asynq.Config{
			Concurrency:       a.Cfg.WorkerConcurrency,
			Queues:            map[string]int{q: 1},
			TaskCheckInterval: poll,
			ShutdownTimeout:   a.Cfg.ShutdownTimeout,
			Logger:            logging.Asynq{L: log.With("queue", q)},
			LogLevel:          asynq.WarnLevel,
			// A file rejected for its content completes its task (the outcome is on the ingest);
			// what still returns SkipRetry (an undecodable payload, a mailbox refused for good) is
			// archived by asynq, and no SkipRetry error is retried as a failure meanwhile.
			IsFailure:      func(err error) bool { return !errors.Is(err, asynq.SkipRetry) },
			RetryDelayFunc: retryDelay,
		}))
	}
	mux := asynq.NewServeMux()
	mux.Use(taskLog(log), a.Metrics.Asynq, a.durableTasks)
	mux.HandleFunc(tasks.TypeReportParse, a.Ingest.HandleParse)
	mux.HandleFunc(tasks.TypeIngestSweep, a.Ingest.HandleSweep(a.Cfg.SweepGrace))
	mux.HandleFunc(tasks.TypeIngestRequeue, a.Ingest.HandleRequeue)
	mux.HandleFunc(tasks.TypeMailboxPoll, a.Mail.HandlePoll)
	mux.HandleFunc(tasks.TypeMailboxDispatch, a.Mail.HandleDispatch)
	mux.HandleFunc(tasks.TypeRollupApply, a.Rollup.HandleApply)
	mux.HandleFunc(tasks.TypeRollupCatchUp, a.Rollup.HandleCatchUp)
	mux.HandleFunc(tasks.TypeEnrichIngest, a.Enrich.HandleIngest)
	mux.HandleFunc(tasks.TypeEnrichIPs, a.Enrich.HandleIPs)
	mux.HandleFunc(tasks.TypeEnrichRefresh, a.Enrich.HandleRefresh)
	mux.HandleFunc(tasks.TypeSendersRollup, a.Senders.HandleRollup)
	mux.HandleFunc(tasks.TypeAlertCheck, a.Alerts.HandleCheck)
	mux.HandleFunc(tasks.TypeAlertDeliver, a.Notify.HandleDeliver)
	mux.HandleFunc(tasks.TypeMLTrain, a.ML.HandleTrain)
	mux.HandleFunc(tasks.TypeMLDetect, a.ML.HandleDetect)
	mux.HandleFunc(tasks.TypeRetentionPurge, a.Retention.HandlePurge)
	mux.HandleFunc(tasks.TypeExportRender, a.Export.HandleRender)
	mux.HandleFunc(tasks.TypeExportCleanup, a.Export.HandleCleanup)
	mux.HandleFunc(tasks.TypeDigestDispatch, a.Digest.HandleDispatch)
	mux.HandleFunc(tasks.TypeDigestSend, a.Digest.HandleSend)
	mux.HandleFunc(tasks.TypeScheduleTick, schedule.TickHandler(a.Client, a.Jobs(), time.Now))
	return srvs, mux
}

// retryDelay retries soon what is likely to work soon. A task whose worker died (its lease
// expired) is retried after a second: the handlers are idempotent and the worker, not the
// task, was the problem. A parse task that met the database or Redis down is retried after
// 5, 10 and 20 s before asynq's backoff (15 s + n⁴ + jitter) takes over, so files uploaded
// during a short outage are processed seconds after it ends (the recovery watch re-enqueues
// them too once it sees the outage end).
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return time.Second
	}
	if t.Type() == tasks.TypeAlertDeliver {
		// Alert deliveries back off from 10 s to 10 min, so a receiver down for minutes still
		// gets its alert soon after.
		return notify.Backoff(n)
	}
	if t.Type() == tasks.TypeReportParse && n < 3 {
		return time.Duration(5<<n) * time.Second
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// durableTasks makes what a rollup:apply task wrote durable before it completes (report:parse
// does so itself), and tells the recovery watch when a task met the database or Redis down.
func (a *App) durableTasks(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err == nil && t.Type() == tasks.TypeRollupApply {
			err = a.Store.Durable(ctx)
		}
		if err != nil {
			a.Ingest.NoteOutage(err)
		}
		return err
	})
}

// taskLog writes one line per processed task with type, id, duration and outcome.
func taskLog(log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			id, _ := asynq.GetTaskID(ctx)
			retry, _ := asynq.GetRetryCount(ctx)
			switch {
			case err == nil:
				log.Info("task done", "type", t.Type(), "task_id", id, "duration", time.Since(start))
			case errors.Is(err, asynq.SkipRetry):
				log.Info("task rejected its input", "type", t.Type(), "task_id", id, "duration", time.Since(start), "err", err)
			default:
				log.Warn("task failed; will retry", "type", t.Type(), "task_id", id, "retry", retry, "duration", time.Since(start), "err", err)
			}
			return err
		})
	}
}

// NewScheduler builds the scheduler with every periodic job registered.
func (a *App) NewScheduler() (*asynq.Scheduler, error) {
	s := asynq.NewScheduler(a.RedisOpt, &asynq.SchedulerOpts{Location: time.UTC, Logger: logging.Asynq{L: a.Log.With("component", "scheduler")}, LogLevel: asynq.WarnLevel})
	if err := schedule.Register(s, a.Jobs()); err != nil {
		return nil, err
	}
	return s, nil
}

// NewHTTP builds the API server.
func (a *App) NewHTTP() (*http.Server, error) {
	tmp, err := TempDir(a.Cfg)
	if err != nil {
		return nil, err
	}
	if a.Auth == nil {
		if err := a.buildAuth(); err != nil {
			return nil, err
		}
	}
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: a.RedisOpt})
	an := a.Analytics
	a.answers.Store(an.Cache())
	sendersAPI := senders.NewAPI(a.Senders, an).WithAudit(a.Audit)
	e := httpapi.New(httpapi.Deps{
		Store: a.Store, Ingest: a.Ingest, Mail: a.Mail, Queue: a.queue(), Tasks: a.inspector(), Redis: redisPinger{a},
		Analytics: an, Geolocation: enrich.NewAPI(a.Enrich, an).WithSenders(sendersAPI), Senders: sendersAPI, GeoStatus: geoStatus{a}, Describe: a.Enrich.Describe,
		Monitoring: mon, Web: web.New(), TempDir: tmp, Log: a.Log.With("component", "http"),
		Limits: httpapi.Limits{UploadFiles: a.Cfg.Limits.UploadFiles, UploadBytes: a.Cfg.Limits.UploadBytes, FileBytes: a.Cfg.Limits.FileBytes},
		Alerts: a.Alerts, Notify: a.Notify, TLSReports: a.TLSReports, Failures: a.Failures, ML: a.ML,
		Metrics: a.Metrics, Retention: retention.NewAPI(a.Retention, a.queue(), a.Audit),
		Export: a.Export, Digest: a.Digest,
		Auth: a.Auth, Audit: a.Audit, Limiter: a.Limiter, Rates: rates(a.Cfg.Auth.Rates, a.Cfg.Reports.TLSRPTRate),
		TrustedProxies: a.Cfg.Auth.TrustedProxies, IPv6Prefix: a.Cfg.Auth.IPv6Prefix, CORSOrigins: a.Cfg.Auth.CORSOrigins,
	})
	return &http.Server{
		Addr:              a.Cfg.HTTPAddr,
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		// Uploads of many large files stream for a while; the body cap bounds them instead.
		ReadTimeout:  30 * time.Minute,
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}, nil
}

// queue and inspector keep a nil client out of the interfaces (a nil *asynq.Client inside an
// interface would not compare as nil).
func (a *App) queue() httpapi.Queue {
	if a.Client == nil {
		return nil
	}
	return a.Client
}

func (a *App) inspector() httpapi.TaskReader {
	if a.Inspector == nil {
		return nil
	}
	return a.Inspector
}

type redisPinger struct{ a *App }

func (p redisPinger) Ping(ctx context.Context) error {
	if p.a.Redis == nil {
		return errors.New("no redis")
	}
	return p.a.Redis.Ping(ctx).Err()
}

// runWorker runs the asynq server and the recovery watch until ctx ends.
func (a *App) runWorker(ctx context.Context) error {
	srvs, mux := a.NewWorker()
	stop := func() {
		// Together: each waits up to VIGIL_SHUTDOWN_TIMEOUT for its running tasks.
		var wg sync.WaitGroup
		for _, srv := range srvs {
			wg.Go(srv.Shutdown)
		}
		wg.Wait()
	}
	for i, srv := range srvs {
		if err := srv.Start(mux); err != nil {
			for _, started := range srvs[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("worker: %w", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Ingest.Watch(ctx, a.watch())
	}()
	a.heartbeat(ctx, "worker") // returns when ctx is done
	<-done
	stop()
	return nil
}

// watch is the recovery watch's configuration: after a fault, the rollup catch-up runs too.
func (a *App) watch() ingest.Watch {
	return ingest.Watch{Redis: a.Redis, Interval: a.Cfg.RecoveryInterval, Recovered: a.catchUpRollups}
}

// catchUpRollups enqueues a rollup catch-up now (keyed to the second, so the watches of
// several workers recovering from one fault add one): reports whose rollup:apply task was
// lost with Redis, or whose rollup rows a database crash undid, are applied within seconds.
func (a *App) catchUpRollups(ctx context.Context, why string) {
	t, err := tasks.NewRollupCatchUpTask(time.Now().Truncate(time.Second))
	if err == nil {
		_, err = a.Client.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && ctx.Err() == nil {
		a.Log.Warn("recovery: could not enqueue the rollup catch-up; the scheduled one will run", "why", why, "err", err)
	}
}

func (a *App) runScheduler(ctx context.Context) error {
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	a.heartbeat(ctx, "scheduler")
	s.Shutdown()
	return nil
}

// runHTTP serves on ln, already bound, until ctx ends.
func (a *App) runHTTP(ctx context.Context, ln net.Listener) error {
	srv, err := a.NewHTTP()
	if err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// geoStatus tells /ready which GeoIP databases are loaded (informative: readiness does not
// depend on them).
type geoStatus struct{ a *App }

func (g geoStatus) GeoIP() any { return g.a.Enrich.GeoStatus() }
