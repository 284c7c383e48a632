package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// ML task types (pkg/ml): train an Isolation Forest on the sources of a window, score the
// sources of a window with the deployed model.
const (
	TypeMLTrain  = "ml:train"
	TypeMLDetect = "ml:detect"
)

// MLPayload is a training or scoring run: its window in days, who asked (an admin's e-mail or
// "schedule") and the period or minute that keys the TaskID.
type MLPayload struct {
	Days   int       `json:"days"`
	By     string    `json:"by"`
	Period time.Time `json:"period"`
	Reason string    `json:"reason"` // schedule, manual
}

// MLTaskID keys a run to its type, reason and period: the schedule's week or day, a manual
// request's minute. Concurrent requests within one minute share a task; the handler itself
// lets one training (and one scoring) run at a time.
func MLTaskID(typ, reason string, period time.Time) string {
	return fmt.Sprintf("%s:%s:%d", typ, reason, period.Unix())
}

func newML(typ, reason, by string, days int, period time.Time, timeout time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(MLPayload{Days: days, By: by, Period: period.UTC(), Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(typ, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(MLTaskID(typ, reason, period)),
		asynq.MaxRetry(3),
		asynq.Timeout(timeout),
		// The result (model id, counts) stays readable through GET /tasks/status for a day.
		asynq.Retention(24*time.Hour),
	), nil
}

// NewMLTrainTask is POST /analytics/ml/train: one per minute however many clicks.
func NewMLTrainTask(days int, by string, at time.Time) (*asynq.Task, error) {
	return newML(TypeMLTrain, "manual", by, days, at.UTC().Truncate(time.Minute), 30*time.Minute)
}

// NewMLDetectTask is POST /analytics/anomalies/detect: one per minute however many clicks.
func NewMLDetectTask(days int, by string, at time.Time) (*asynq.Task, error) {
	return newML(TypeMLDetect, "manual", by, days, at.UTC().Truncate(time.Minute), 30*time.Minute)
}

// NewMLTrainScheduledTask is the scheduler's training of period (days from the configuration).
func NewMLTrainScheduledTask(days int) func(period time.Time) (*asynq.Task, error) {
	return func(period time.Time) (*asynq.Task, error) {
		return newML(TypeMLTrain, "schedule", "schedule", days, period, 30*time.Minute)
	}
}

// NewMLDetectScheduledTask is the scheduler's scoring of period.
func NewMLDetectScheduledTask(days int) func(period time.Time) (*asynq.Task, error) {
	return func(period time.Time) (*asynq.Task, error) {
		return newML(TypeMLDetect, "schedule", "schedule", days, period, 30*time.Minute)
	}
}
