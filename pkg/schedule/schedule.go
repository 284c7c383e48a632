// Package schedule runs Vigil's periodic jobs. The asynq scheduler only enqueues a small tick;
// the tick handler (on a worker) enqueues the real task with a TaskID keyed to the period, so a
// duplicate tick, two schedulers or a restarted one never run the same period twice.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/tasks"
)

// Job is one periodic job: Build makes the task for the period starting at the given time.
type Job struct {
	Name     string
	Interval time.Duration
	Build    func(period time.Time) (*asynq.Task, error)
}

// Enqueuer is the part of *asynq.Client the tick handler needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Register adds a tick per job to the scheduler.
func Register(s *asynq.Scheduler, jobs []Job) error {
	for _, j := range jobs {
		t, err := tasks.NewScheduleTickTask(j.Name, j.Interval)
		if err != nil {
			return err
		}
		if _, err := s.Register("@every "+j.Interval.String(), t); err != nil {
			return fmt.Errorf("schedule: register %s: %w", j.Name, err)
		}
	}
	return nil
}

// TickHandler turns ticks into period-keyed tasks.
func TickHandler(enq Enqueuer, jobs []Job, now func() time.Time) asynq.HandlerFunc {
	byName := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		byName[j.Name] = j
	}
	return func(ctx context.Context, t *asynq.Task) error {
		var p tasks.ScheduleTickPayload
		if err := tasks.Decode(t, &p); err != nil {
			return err
		}
		j, ok := byName[p.Job]
		if !ok {
			return fmt.Errorf("schedule: unknown job %q: %w", p.Job, asynq.SkipRetry)
		}
		task, err := j.Build(now().UTC().Truncate(j.Interval))
		if err != nil {
			return err
		}
		if _, err := enq.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("schedule: enqueue %s: %w", j.Name, err)
		}
		return nil
	}
}
