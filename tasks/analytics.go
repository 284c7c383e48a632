package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Analytics task types: keeping the rollup tables up to date (pkg/rollup).
const (
	TypeRollupApply   = "rollup:apply"
	TypeRollupCatchUp = "rollup:catchup"
)

// RollupApplyPayload names the reports to add to the rollups: those first stored from an
// ingest, or explicit report ids. Applying is idempotent, so either may repeat reports.
type RollupApplyPayload struct {
	IngestID  int64   `json:"ingest_id,omitempty"`
	ReportIDs []int64 `json:"report_ids,omitempty"`
}

// NewRollupApplyTask rolls up the new reports of one processed file. Enqueue it after the file
// finished with new reports; the TaskID makes a second enqueue for the same file a no-op.
// Rollups are not urgent enough to delay parsing: the default queue.
func NewRollupApplyTask(ingestID int64) (*asynq.Task, error) {
	b, err := json.Marshal(RollupApplyPayload{IngestID: ingestID})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeRollupApply, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:ingest:%d", TypeRollupApply, ingestID)),
		asynq.MaxRetry(8),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(time.Hour),
	), nil
}

// NewRollupApplyReportsTask rolls up explicit reports (tools, re-imports).
func NewRollupApplyReportsTask(reportIDs []int64) (*asynq.Task, error) {
	b, err := json.Marshal(RollupApplyPayload{ReportIDs: reportIDs})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeRollupApply, b, asynq.Queue(QueueDefault), asynq.MaxRetry(8), asynq.Timeout(10*time.Minute)), nil
}

// RollupCatchUpPayload is the period the catch-up belongs to; it only keys the TaskID.
type RollupCatchUpPayload struct {
	Period time.Time `json:"period"`
}

// NewRollupCatchUpTask applies every report no rollup:apply task applied; one per period.
func NewRollupCatchUpTask(period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(RollupCatchUpPayload{Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeRollupCatchUp, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d", TypeRollupCatchUp, period.Unix())),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(24*time.Hour),
	), nil
}
