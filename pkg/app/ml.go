package app

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/schedule"
	"github.com/vigilhq/vigil/tasks"
)

// buildML builds the ML jobs (anomalous senders, forecasts, policy advice) on the rollups and
// the enrichment cache. A scoring run that finds anomalies enqueues an alert check for their
// domains, so an anomaly rule raises its alerts at once rather than at the next hourly check.
func (a *App) buildML() {
	log := a.Log.With("component", "ml")
	var q ml.Enqueuer
	if a.Client != nil {
		q = a.Client
	}
	c := a.Cfg.ML
	d := ml.Deps{Store: a.Store, Queue: q, Describe: a.Enrich.Describe, Audit: audit.New(a.Store), Log: log,
		Config: ml.Config{Contamination: c.Contamination, Trees: c.Trees, TrainDays: c.TrainDays, DetectDays: c.DetectDays}}
	if a.Client != nil {
		d.OnDetected = func(ctx context.Context, domains []string) {
			t, err := tasks.NewAlertCheckDomainsTask(domains, time.Now())
			if err == nil {
				_, err = a.Client.EnqueueContext(ctx, t)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				log.Warn("alert check not enqueued after scoring; the hourly check will run", "domains", len(domains), "err", err)
			}
		}
	}
	a.ML = ml.New(d)
}

// mlJobs are the scheduled training (weekly by default) and scoring (daily by default).
func (a *App) mlJobs() []schedule.Job {
	c := a.Cfg.ML
	return []schedule.Job{
		{Name: tasks.TypeMLTrain, Interval: c.TrainInterval, Build: tasks.NewMLTrainScheduledTask(c.TrainDays)},
		{Name: tasks.TypeMLDetect, Interval: c.DetectInterval, Build: tasks.NewMLDetectScheduledTask(c.DetectDays)},
	}
}
