package ingest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/tasks"
)

// RequeueResult is what an ingest:requeue task did, as its asynq result.
type RequeueResult struct {
	Enqueued int `json:"enqueued"`
}

// HandleRequeue runs an ingest:requeue task: every file still pending since before the
// trigger is enqueued again (the sweep does the same, but only for files pending longer than
// its grace, and at most SweepBatch per period). A file already queued or running keeps its
// task (one TaskID per file), so the requeue never parses a file twice at once.
func (s *Service) HandleRequeue(ctx context.Context, t *asynq.Task) error {
	var p tasks.IngestRequeuePayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	total := 0
	for {
		// Touched files get a newer updated_at than p.Before, so each round finds new ones.
		ids, err := s.store.StalePending(ctx, p.Before, SweepBatch)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.requeue(ctx, id); err != nil {
				return err
			}
		}
		if err := s.store.TouchIngests(ctx, ids); err != nil {
			return err
		}
		total += len(ids)
		if len(ids) < SweepBatch {
			break
		}
	}
	s.log.Info("pending files enqueued again", "count", total)
	if w := t.ResultWriter(); w != nil {
		b, err := json.Marshal(RequeueResult{Enqueued: total})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		w.Write(b)
	}
	return nil
}
