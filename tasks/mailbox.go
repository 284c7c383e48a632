package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeMailboxPoll reads the new mail of one IMAP mailbox into the pipeline (pkg/mailpoll).
const TypeMailboxPoll = "mailbox:poll"

// MailboxPollPayload names the mailbox (a row of the mailboxes table) and the period the poll
// belongs to: a scheduler period, or the minute of a manual trigger. The period only keys the
// TaskID.
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
// Retention keeps the TaskID taken for an hour so a repeated trigger is refused.
func NewMailboxPollTask(mailboxID int64, period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(MailboxPollPayload{MailboxID: mailboxID, Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeMailboxPoll, b,
		asynq.Queue(QueueIngest),
		asynq.TaskID(MailboxPollTaskID(mailboxID, period)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(time.Hour),
	), nil
}
