package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeRetentionPurge deletes what is older than the retention policy (pkg/retention).
const TypeRetentionPurge = "retention:purge"

// RetentionPurgePayload says when the purge was asked for (it keys the TaskID, so the
// scheduler's tick and an admin's request of the same minute are one purge) and by whom.
type RetentionPurgePayload struct {
	Period time.Time `json:"period"`
	Reason string    `json:"reason"` // schedule, manual
}

// RetentionPurgeTaskID is the purge's id for reason and the minute of at.
func RetentionPurgeTaskID(reason string, at time.Time) string {
	return fmt.Sprintf("%s:%s:%d", TypeRetentionPurge, reason, at.UTC().Truncate(time.Minute).Unix())
}

func newRetentionPurge(reason string, at time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(RetentionPurgePayload{Period: at.UTC().Truncate(time.Minute), Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	// Housekeeping: on the default queue, behind ingestion. A purge interrupted by a timeout
	// or a crash has committed its finished batches; the retry goes on from there.
	return asynq.NewTask(TypeRetentionPurge, b, asynq.Queue(QueueDefault), asynq.TaskID(RetentionPurgeTaskID(reason, at)),
		asynq.MaxRetry(3), asynq.Timeout(2*time.Hour), asynq.Retention(24*time.Hour)), nil
}

// NewRetentionPurgeTask is the scheduler's periodic purge.
func NewRetentionPurgeTask(period time.Time) (*asynq.Task, error) {
	return newRetentionPurge("schedule", period)
}

// NewRetentionPurgeNowTask is a purge an admin asked for (POST /api/retention/purge).
func NewRetentionPurgeNowTask(at time.Time) (*asynq.Task, error) {
	return newRetentionPurge("manual", at)
}
