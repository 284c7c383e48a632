package rollup

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/tasks"
)

// HandleApply is the rollup:apply handler.
func (r *Rollup) HandleApply(ctx context.Context, t *asynq.Task) error {
	var p tasks.RollupApplyPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	ids := p.ReportIDs
	if p.IngestID != 0 {
		more, err := r.IngestReports(ctx, p.IngestID)
		if err != nil {
			return err
		}
		ids = append(ids, more...)
	}
	if len(ids) == 0 {
		return nil
	}
	return r.Apply(ctx, ids)
}

// catchUpBatch is how many reports one CatchUp call looks for.
const catchUpBatch = 5000

// HandleCatchUp is the rollup:catchup handler: it applies reports left behind until none is,
// or until the task's deadline is near (the next period's task goes on from there).
func (r *Rollup) HandleCatchUp(ctx context.Context, t *asynq.Task) error {
	start := time.Now()
	total := 0
	for {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < time.Minute {
			break
		}
		n, err := r.CatchUp(ctx, catchUpBatch)
		if err != nil {
			return fmt.Errorf("rollup catch-up after %d reports: %w", total, err)
		}
		total += n
		if n < catchUpBatch {
			break
		}
	}
	if total > 0 {
		r.log.Info("rollup catch-up applied reports left behind", "reports", total, "duration", time.Since(start))
	}
	return nil
}
