package schedule_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/schedule"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// Ticks of one period, however many (a duplicate tick, two schedulers), enqueue one task; the
// next period enqueues another.
func TestTickEnqueuesOncePerPeriod(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		opt := b.Redis(t, 4)
		client := asynq.NewClient(opt)
		defer client.Close()
		insp := asynq.NewInspector(opt)
		defer insp.Close()

		now := time.Date(2026, 1, 1, 10, 7, 30, 0, time.UTC)
		jobs := []schedule.Job{{Name: tasks.TypeIngestSweep, Interval: 5 * time.Minute, Build: tasks.NewIngestSweepTask}}
		h := schedule.TickHandler(client, jobs, func() time.Time { return now })
		tick, err := tasks.NewScheduleTickTask(tasks.TypeIngestSweep, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := h.ProcessTask(context.Background(), tick); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(5 * time.Minute)
		if err := h.ProcessTask(context.Background(), tick); err != nil {
			t.Fatal(err)
		}
		pending, err := insp.ListPendingTasks(tasks.QueueDefault)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 2 {
			t.Fatalf("%d sweep tasks enqueued for 4 ticks over 2 periods, want 2", len(pending))
		}
		want := map[string]bool{"ingest:sweep:1767261900": true, "ingest:sweep:1767262200": true} // 10:05 and 10:10 UTC
		for _, p := range pending {
			if !want[p.ID] {
				t.Errorf("unexpected task id %s", p.ID)
			}
		}

		unknown, _ := tasks.NewScheduleTickTask("nothing:here", time.Minute)
		if err := h.ProcessTask(context.Background(), unknown); !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("unknown job: %v, want SkipRetry", err)
		}
	})
}
