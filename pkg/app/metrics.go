package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/metrics"
)

// buildMetrics makes this process's registry: its own work (HTTP, tasks, ingestion, the
// database pool, the answer cache) is counted in every role.
func (a *App) buildMetrics() error {
	a.Metrics = metrics.New()
	a.Ingest.Observe(a.Metrics)
	db, err := a.Store.DB().DB()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return a.Metrics.Register(metrics.DBStats(db), metrics.Cache(answerCache{&a.answers}))
}

// exportShared adds the state every process shares (queues in Redis, the rollup backlog in
// the database), read at each scrape. Only the api and the scheduler export it: worker
// replicas would repeat the same series and the same Redis and database reads.
func (a *App) exportShared() error {
	if a.sharedExported {
		return nil
	}
	a.sharedExported = true
	if a.Inspector != nil {
		if err := a.Metrics.Queues(a.Inspector); err != nil {
			return fmt.Errorf("metrics: queues: %w", err)
		}
	}
	return a.Metrics.Register(metrics.Rollup(func(ctx context.Context) (metrics.Backlog, error) {
		n, oldest, err := a.Rollup.Backlog(ctx)
		return metrics.Backlog{Reports: n, Oldest: oldest}, err
	}))
}

// answerCache reads the counts of the analytics answer cache, built with the HTTP server.
type answerCache struct {
	p *atomic.Pointer[gencache.Cache]
}

func (c answerCache) Counts() (uint64, uint64) { return c.p.Load().Counts() }

// listenMetrics binds VIGIL_METRICS_ADDR when it is set (nil listener otherwise), so a port in
// use stops the start.
func (a *App) listenMetrics() (net.Listener, error) {
	if a.Cfg.MetricsAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.Cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: VIGIL_METRICS_ADDR %s: %w", a.Cfg.MetricsAddr, err)
	}
	return ln, nil
}

// serveMetrics serves /metrics, without credentials, on ln until ctx ends: the address is
// meant for a network only Prometheus reaches (the Kubernetes NetworkPolicy says so).
func (a *App) serveMetrics(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler(a.Log.With("component", "metrics")))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	a.Log.Info("metrics listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// withMetrics readies a role's metrics: the shared state when it exports it (api, scheduler),
// and the VIGIL_METRICS_ADDR listener when set.
func (a *App) withMetrics(shared bool) (net.Listener, error) {
	if shared {
		if err := a.exportShared(); err != nil {
			return nil, err
		}
	}
	return a.listenMetrics()
}
