package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Alerting task types (pkg/alerting evaluates, pkg/notify delivers).
const (
	// TypeAlertCheck evaluates the enabled rules, over some domains or all.
	TypeAlertCheck = "alert:check"
	// TypeAlertDeliver sends one alert to one channel.
	TypeAlertDeliver = "alert:deliver"
)

// AlertCheckPayload names the domains to evaluate (none: every domain) and the period or
// occasion the check belongs to, which only keys the TaskID.
type AlertCheckPayload struct {
	Domains []string  `json:"domains,omitempty"`
	Period  time.Time `json:"period"`
	Reason  string    `json:"reason"` // schedule, apply, manual
}

// AlertCheckTaskID is one check per reason, domain set and period: an hour of the schedule,
// a minute of rollup applies or manual triggers.
func AlertCheckTaskID(reason string, domains []string, period time.Time) string {
	id := fmt.Sprintf("%s:%s:%d", TypeAlertCheck, reason, period.Unix())
	if len(domains) > 0 {
		d := slices.Clone(domains)
		slices.Sort(d)
		sum := sha256.Sum256([]byte(strings.Join(d, ",")))
		id += ":" + hex.EncodeToString(sum[:8])
	}
	return id
}

func newAlertCheck(reason string, domains []string, period time.Time, keep time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(AlertCheckPayload{Domains: domains, Period: period.UTC(), Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeAlertCheck, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(AlertCheckTaskID(reason, domains, period)),
		asynq.MaxRetry(3),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(keep),
	), nil
}

// NewAlertCheckTask is the hourly evaluation of every domain (scheduler).
func NewAlertCheckTask(period time.Time) (*asynq.Task, error) {
	return newAlertCheck("schedule", nil, period, 2*time.Hour)
}

// NewAlertCheckDomainsTask evaluates the domains a rollup apply changed; applies within the
// same minute for the same domains share one check.
func NewAlertCheckDomainsTask(domains []string, at time.Time) (*asynq.Task, error) {
	return newAlertCheck("apply", domains, at.UTC().Truncate(time.Minute), 10*time.Minute)
}

// NewAlertCheckNowTask is POST /alerts/check: every domain, one per minute however many clicks.
func NewAlertCheckNowTask(at time.Time) (*asynq.Task, error) {
	return newAlertCheck("manual", nil, at.UTC().Truncate(time.Minute), time.Hour)
}

// AlertDeliverPayload names the alert and the channel.
type AlertDeliverPayload struct {
	AlertID   int64 `json:"alert_id"`
	ChannelID int64 `json:"channel_id"`
}

// AlertDeliverRetries is how often a failed delivery is retried (with backoff) before it is
// recorded failed.
const AlertDeliverRetries = 5

// NewAlertDeliverTask sends one alert to one channel; one task per pair whoever enqueues it.
func NewAlertDeliverTask(alertID, channelID int64) (*asynq.Task, error) {
	b, err := json.Marshal(AlertDeliverPayload{AlertID: alertID, ChannelID: channelID})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeAlertDeliver, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d:%d", TypeAlertDeliver, alertID, channelID)),
		asynq.MaxRetry(AlertDeliverRetries),
		asynq.Timeout(time.Minute),
		asynq.Retention(24*time.Hour),
	), nil
}
