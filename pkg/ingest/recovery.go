package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/tasks"
)

// Watch is what notices, within seconds, the faults that leave files stranded, and puts
// every file still pending back in the queue; the periodic sweep (minutes) stays as the last
// resort. Each worker runs one: all it does is idempotent (one TaskID per file).
type Watch struct {
	// Redis is the queue's server: its data vanishing (restarted without a save, flushed) or
	// its coming back after an outage is a fault to recover from.
	Redis redis.UniversalClient
	// Interval between checks (VIGIL_RECOVERY_INTERVAL).
	Interval time.Duration
	// Recovered runs after each recovery (the rollup catch-up: reports whose rollup task was
	// lost with Redis, or whose rollup rows a database crash undid). May be nil.
	Recovered func(ctx context.Context, why string)
}

// markerKey is set in Redis by the watchers. Redis never loses one key alone (the queue
// needs noeviction): when it is gone, Redis lost everything, the queued tasks with it.
const markerKey = "vigil:recovery:marker"

// Run watches until ctx ends. It recovers once at once (a worker starting: the previous one
// may have died, or Redis may have restarted with it), then whenever the database or Redis
// answers again after failing, when Redis lost its data, and it rescues the tasks of workers
// that died (see rescueOrphans). Errors are logged; the next check tries again.
func (s *Service) Watch(ctx context.Context, w Watch) {
	if w.Interval <= 0 {
		w.Interval = 5 * time.Second
	}
	var dbDown, redisDown bool
	// The marker goes in before the start-up recovery: set after it, a flush in between
	// (the recovery takes a while on a large backlog) would go unnoticed for good.
	if w.Redis != nil {
		w.Redis.Set(ctx, markerKey, time.Now().UTC().Format(time.RFC3339), 0)
	}
	s.recover(ctx, w, "start-up")
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		why := ""
		if err := s.store.Ping(ctx); err != nil || s.outage.Swap(false) {
			if err != nil && !dbDown {
				s.log.Warn("database unreachable; files will be re-enqueued when it answers", "err", err)
			}
			dbDown = true
			if err != nil {
				continue // nothing can be recovered without it
			}
		}
		if dbDown {
			dbDown, why = false, "database answering again"
		}
		if w.Redis != nil {
			set, err := w.Redis.SetNX(ctx, markerKey, time.Now().UTC().Format(time.RFC3339), 0).Result()
			switch {
			case err != nil:
				if !redisDown {
					s.log.Warn("redis unreachable; files will be re-enqueued when it answers", "err", err)
				}
				redisDown = true
				continue
			case redisDown:
				redisDown, why = false, "redis answering again"
			case set:
				why = "redis lost its data"
			}
		}
		if why != "" {
			s.recover(ctx, w, why)
		}
		if err := s.rescueOrphans(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not check for tasks of dead workers", "err", err)
		}
	}
}

// recover enqueues every pending file again, then runs the Recovered hook.
func (s *Service) recover(ctx context.Context, w Watch, why string) {
	start := time.Now()
	n, err := s.RequeuePending(ctx, start)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("recovery: re-enqueueing pending files failed; the next check or the sweep retries", "why", why, "err", err)
			s.outage.Store(true) // try again at the next check
		}
		return
	}
	if n > 0 || why != "start-up" {
		s.log.Info("recovery: pending files enqueued again", "why", why, "files", n, "duration", time.Since(start))
	}
	if w.Recovered != nil {
		w.Recovered(ctx, why)
	}
}

// RequeuePending enqueues every file pending since before again (reviving archived or
// completed tasks; one already queued or running is left as it is) and says how many.
func (s *Service) RequeuePending(ctx context.Context, before time.Time) (int, error) {
	if s.enq == nil {
		return 0, nil
	}
	total := 0
	for {
		n, err := s.requeueStale(ctx, before)
		total += n
		if err != nil || n < SweepBatch {
			return total, err
		}
	}
}

// rescueOrphans gives a file whose task is orphaned (its worker stopped extending the lease:
// killed, crashed or cut off, 30 s ago at most) a new task at once. asynq would retry the
// orphan itself only after its recoverer's next round (every minute, for leases expired
// 30 s before) plus the retry delay. The new task is keyed to the file's attempt, so repeated
// checks add one; when asynq retries the orphan later, it finds the file finished.
func (s *Service) rescueOrphans(ctx context.Context) error {
	if s.inspector == nil || s.enq == nil {
		return nil
	}
	active, err := s.inspector.ListActiveTasks(tasks.QueueIngest, asynq.PageSize(1000))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var ids []int64
	for _, t := range active {
		if !t.IsOrphaned || t.Type != tasks.TypeReportParse {
			continue
		}
		var p tasks.ReportParsePayload
		if err := tasks.Decode(asynq.NewTask(t.Type, t.Payload), &p); err == nil {
			ids = append(ids, p.IDs()...)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ings, err := s.store.GetIngests(ctx, ids)
	if err != nil {
		return err
	}
	n := 0
	for _, ing := range ings {
		if ing.Status != store.StatusPending {
			continue
		}
		t, err := tasks.NewReportParseRescueTask(ing.ID, ing.Attempts)
		if err != nil {
			return err
		}
		if _, err := s.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("ingest: rescue %d: %w", ing.ID, err)
		} else if err == nil {
			n++
		}
	}
	if n > 0 {
		s.log.Warn("recovery: files whose worker died enqueued again", "files", n)
	}
	return nil
}

// NoteOutage remembers that the database or Redis failed under a task, so the next check
// that finds them answering recovers (the failure may have undone what other tasks wrote).
func (s *Service) NoteOutage(err error) {
	if store.IsUnavailable(err) {
		s.outage.Store(true)
	}
}
