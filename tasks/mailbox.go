package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

const (
	// TypeMailboxPoll reads the new mail of one IMAP mailbox into the pipeline (pkg/mailpoll).
	TypeMailboxPoll = "mailbox:poll"
	// TypeMailboxDispatch enqueues the polls of the mailboxes that are due (scheduled every minute).
	TypeMailboxDispatch = "mailbox:dispatch"
)

// MailboxPollPayload names the mailbox (a row of the mailboxes table) and the period the poll
// belongs to: a period of the mailbox's interval, or the minute of a manual trigger. The
// period only keys the TaskID.
type MailboxPollPayload struct {
	MailboxID int64     `json:"mailbox_id"`
	Period    time.Time `json:"period"`
}

// MailboxPollTaskID is one poll per mailbox and period, whatever number of ticks or triggers.
func MailboxPollTaskID(mailboxID int64, period time.Time) string {
	return fmt.Sprintf("%s:%d:%d", TypeMailboxPoll, mailboxID, period.Unix())
}

// NewMailboxPollTask polls one mailbox. A poll of a long backlog may take a while: the timeout
// is generous, and the poll's database lease keeps two polls of one mailbox apart anyway.
// keep is how long the TaskID stays taken after the poll ran (at least an hour): the period's
// length, so later dispatches within the period are refused.
func NewMailboxPollTask(mailboxID int64, period time.Time, keep time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(MailboxPollPayload{MailboxID: mailboxID, Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeMailboxPoll, b,
		asynq.Queue(QueueIngest),
		asynq.TaskID(MailboxPollTaskID(mailboxID, period)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(max(keep, time.Hour)),
	), nil
}

// MailboxDispatchPayload is the minute the dispatch belongs to; it only keys the TaskID.
type MailboxDispatchPayload struct {
	Period time.Time `json:"period"`
}

// NewMailboxDispatchTask looks for mailboxes due a poll; one per period whatever the ticks.
func NewMailboxDispatchTask(period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(MailboxDispatchPayload{Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeMailboxDispatch, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d", TypeMailboxDispatch, period.Unix())),
		asynq.MaxRetry(1),
		asynq.Timeout(time.Minute),
		asynq.Retention(10*time.Minute),
	), nil
}
