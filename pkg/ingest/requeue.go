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
	Enqueued int `json:"enqueued"`        // files enqueued, those put back to pending included
	Reset    int `json:"reset,omitempty"` // failed files put back to pending (with failed only)
}

// HandleRequeue runs an ingest:requeue task: every file still pending since before the
// trigger is enqueued again (the sweep does the same, but only for files pending longer than
// its grace, and at most SweepBatch per period). A file already queued or running keeps its
// task (one TaskID per file), so the requeue never parses a file twice at once. With Failed,
// files that had failed by then are put back to pending with fresh attempts and enqueued too:
// their originals are kept for this.
func (s *Service) HandleRequeue(ctx context.Context, t *asynq.Task) error {
	var p tasks.IngestRequeuePayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	var res RequeueResult
	for {
		// Touched files get a newer updated_at than p.Before, so each round finds new ones.
		n, err := s.requeueStale(ctx, p.Before)
		if err != nil {
			return err
		}
		if res.Enqueued += n; n < SweepBatch {
			break
		}
	}
	for p.Failed {
		// Reset files are pending with a newer updated_at: neither loop sees them again, so a
		// retry of this task resumes with those not reset yet (one reset but not enqueued is
		// pending: the sweep picks it up).
		ids, err := s.store.ResetFailed(ctx, p.Before, SweepBatch)
		if err != nil {
			return err
		}
		if err := s.requeueAll(ctx, ids); err != nil {
			return err
		}
		res.Enqueued += len(ids)
		res.Reset += len(ids)
		if len(ids) < SweepBatch {
			break
		}
	}
	s.log.Info("files enqueued again", "count", res.Enqueued, "failed_reset", res.Reset)
	if w := t.ResultWriter(); w != nil {
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		w.Write(b)
	}
	return nil
}
