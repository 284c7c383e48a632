package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Export and digest task types (pkg/export renders, pkg/digest mails).
const (
	// TypeExportRender renders an export too large to answer in its request.
	TypeExportRender = "export:render"
	// TypeExportCleanup deletes expired export files (scheduler).
	TypeExportCleanup = "export:cleanup"
	// TypeDigestDispatch finds the digests due for the period (scheduler).
	TypeDigestDispatch = "digest:dispatch"
	// TypeDigestSend builds and mails one subscription's digest for one period.
	TypeDigestSend = "digest:send"
)

// ExportRenderPayload names the export row (pkg/export's export_files) and who asked: the
// task status endpoint shows the task to that user (and admins) only.
type ExportRenderPayload struct {
	ExportID string `json:"export_id"`
	UserID   int64  `json:"user_id"`
}

// ExportRenderTaskID is the task of one export row: a retried request cannot render twice.
func ExportRenderTaskID(exportID string) string { return TypeExportRender + ":" + exportID }

// NewExportRenderTask renders one export; keep is how long its result (the download URL)
// stays visible, the file's retention.
func NewExportRenderTask(exportID string, userID int64, keep time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(ExportRenderPayload{ExportID: exportID, UserID: userID})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeExportRender, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(ExportRenderTaskID(exportID)),
		asynq.MaxRetry(3),
		asynq.Timeout(time.Hour),
		asynq.Retention(keep),
	), nil
}

// NewExportCleanupTask deletes the files past their retention (one per period).
func NewExportCleanupTask(period time.Time) (*asynq.Task, error) {
	return asynq.NewTask(TypeExportCleanup, nil,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d", TypeExportCleanup, period.Unix())),
		asynq.MaxRetry(2),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(2*time.Hour),
	), nil
}

// NewDigestDispatchTask looks for digests due (one per period of the schedule).
func NewDigestDispatchTask(period time.Time) (*asynq.Task, error) {
	return asynq.NewTask(TypeDigestDispatch, nil,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d", TypeDigestDispatch, period.Unix())),
		asynq.MaxRetry(3),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(2*time.Hour),
	), nil
}

// DigestSendPayload names a subscription and the start of the period its digest covers.
type DigestSendPayload struct {
	SubscriptionID int64     `json:"subscription_id"`
	Period         time.Time `json:"period"`
}

// NewDigestSendTask mails one digest: keyed to subscription and period, so it is sent once
// (the digest_deliveries row makes that hold past the task's retention too).
func NewDigestSendTask(subscriptionID int64, period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(DigestSendPayload{SubscriptionID: subscriptionID, Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeDigestSend, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d:%d", TypeDigestSend, subscriptionID, period.Unix())),
		asynq.MaxRetry(5),
		asynq.Timeout(15*time.Minute),
		asynq.Retention(7*24*time.Hour),
	), nil
}
