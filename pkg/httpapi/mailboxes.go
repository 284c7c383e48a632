package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/tasks"
)

// Queue is the part of *asynq.Client the trigger routes need.
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskReader is the part of *asynq.Inspector GET /tasks/status needs.
type TaskReader interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

func (a *API) mail() (*mailpoll.Service, error) {
	if a.Mail == nil {
		return nil, problem(http.StatusServiceUnavailable, "mailbox polling is not available in this process")
	}
	return a.Mail, nil
}

// mailError maps mailpoll's errors to problems; the rest go to the error handler.
func mailError(err error) error {
	switch {
	case errors.Is(err, mailpoll.ErrInvalid):
		return problem(http.StatusUnprocessableEntity, "%s", strings.TrimPrefix(err.Error(), mailpoll.ErrInvalid.Error()+": "))
	case errors.Is(err, mailpoll.ErrNameTaken), errors.Is(err, mailpoll.ErrEnvMailbox), errors.Is(err, mailpoll.ErrNotConfigured):
		return problem(http.StatusConflict, "%s", err.Error())
	case errors.Is(err, mailpoll.ErrNoKey):
		return problem(http.StatusServiceUnavailable, "%s", err.Error())
	}
	return err
}

// triggerMailBody optionally names one mailbox.
type triggerMailBody struct {
	MailboxID *int64 `json:"mailbox_id"` // nil: every enabled mailbox
}

// triggerMail enqueues a poll of every enabled mailbox, or of the one named, now (keyed to
// the minute, so a double click enqueues nothing more).
func (a *API) triggerMail(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	var in triggerMailBody
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	var id int64 // 0: every enabled mailbox
	if in.MailboxID != nil {
		// 0 is not "all": a client that meant one mailbox and sent a zero value would poll
		// every one.
		if id = *in.MailboxID; id < 1 {
			return apiparams.BadParam("mailbox_id", "want a mailbox id from 1, or leave it out for every mailbox")
		}
	}
	ids, err := m.Trigger(c.Request().Context(), id)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.TaskTrigger, Target: "email-ingestion", Details: map[string]any{"task_ids": ids}})
	return c.JSON(http.StatusAccepted, map[string]any{"task_ids": ids})
}

// triggerProcessBody is the optional body of POST /tasks/trigger/process-reports.
type triggerProcessBody struct {
	Failed bool `json:"failed"` // also re-parse files that failed
}

// triggerProcess enqueues every file still pending, and with {"failed": true} every failed
// one too (one task; its result counts them).
func (a *API) triggerProcess(c echo.Context) error {
	if a.Queue == nil {
		return problem(http.StatusServiceUnavailable, "no task queue in this process")
	}
	var in triggerProcessBody
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	now := a.now().UTC()
	t, err := tasks.NewIngestRequeueTask(now, in.Failed)
	if err != nil {
		return err
	}
	id := tasks.IngestRequeueTaskID(now, in.Failed)
	if _, err := a.Queue.EnqueueContext(c.Request().Context(), t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", id, err)
	}
	a.record(c, audit.Entry{Action: audit.TaskTrigger, Target: "process-reports", Details: map[string]any{"task_id": id, "failed": in.Failed}})
	return c.JSON(http.StatusAccepted, map[string]any{"task_id": id})
}

// TaskStatus is a task's state as asynq keeps it.
type TaskStatus struct {
	TaskID        string          `json:"task_id"`
	Type          string          `json:"type"`
	Queue         string          `json:"queue"`
	State         string          `json:"state"` // pending, active, scheduled, retry, archived, completed, aggregating
	Retried       int             `json:"retried"`
	MaxRetry      int             `json:"max_retry"`
	LastError     string          `json:"last_error"`
	LastFailedAt  *time.Time      `json:"last_failed_at"`
	NextProcessAt *time.Time      `json:"next_process_at"`
	CompletedAt   *time.Time      `json:"completed_at"`
	Result        json.RawMessage `json:"result"` // what the task reported, when it finished; null otherwise
}

// maxTaskID bounds what is looked up (Vigil's ids are under 60 characters).
const maxTaskID = 200

// taskStatus looks a task up in every queue. Finished tasks stay visible for their retention
// (an hour for polls and parses, a day for sweeps and requeues).
func (a *API) taskStatus(c echo.Context) error {
	if a.Tasks == nil {
		return problem(http.StatusServiceUnavailable, "no task queue in this process")
	}
	id, err := apiparams.PathParam(c, "task_id")
	if err != nil {
		return err
	}
	if id == "" || len(id) > maxTaskID || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return apiparams.BadParam("task_id", "want a task id as a trigger returned it")
	}
	queues := make([]string, 0, len(tasks.Queues()))
	for q := range tasks.Queues() {
		queues = append(queues, q)
	}
	slices.Sort(queues)
	for _, q := range queues {
		info, err := a.Tasks.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		if !mayFollow(principal(c), info) {
			break
		}
		return c.JSON(http.StatusOK, taskView(info))
	}
	return problem(http.StatusNotFound, "task %s: not queued, running or finished within its retention", id)
}

// mayFollow tells whether p may see a task: an admin any, anyone else only an export they
// asked for (its payload names them). Other tasks answer 404 as if they did not exist.
func mayFollow(p auth.Principal, info *asynq.TaskInfo) bool {
	if p.Role >= auth.Admin {
		return true
	}
	if info.Type != tasks.TypeExportRender {
		return false
	}
	var pl tasks.ExportRenderPayload
	return json.Unmarshal(info.Payload, &pl) == nil && pl.UserID == p.User.ID
}

func taskView(info *asynq.TaskInfo) TaskStatus {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	v := TaskStatus{TaskID: info.ID, Type: info.Type, Queue: info.Queue, State: info.State.String(), Retried: info.Retried,
		MaxRetry: info.MaxRetry, LastError: info.LastErr, LastFailedAt: at(info.LastFailedAt),
		NextProcessAt: at(info.NextProcessAt), CompletedAt: at(info.CompletedAt)}
	if len(info.Result) > 0 {
		if json.Valid(info.Result) {
			v.Result = json.RawMessage(info.Result)
		} else {
			v.Result, _ = json.Marshal(string(info.Result))
		}
	}
	return v
}

// getMailbox tells a mailbox's settings, progress and last result.
func (a *API) getMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	st, err := m.Status(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (a *API) listMailboxes(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	p, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	items, total, err := m.List(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[mailpoll.MailboxStatus]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}

func (a *API) createMailbox(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	var in mailpoll.Input
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	st, err := m.Create(c.Request().Context(), in)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxCreate, Target: fmt.Sprintf("mailbox:%d", st.ID),
		Details: map[string]any{"name": st.Name, "host": st.Host, "username": st.Username}})
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/api/mailboxes/%d", st.ID))
	return c.JSON(http.StatusCreated, st)
}

// mailAndID is the mailbox service and the {id} of the path.
func (a *API) mailAndID(c echo.Context) (*mailpoll.Service, int64, error) {
	m, err := a.mail()
	if err != nil {
		return nil, 0, err
	}
	id, err := apiparams.ID(c, "id")
	return m, id, err
}

func (a *API) updateMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	var in mailpoll.Input
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	st, err := m.Update(c.Request().Context(), id, in)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxUpdate, Target: fmt.Sprintf("mailbox:%d", id), Details: map[string]any{"fields": inputFields(in)}})
	return c.JSON(http.StatusOK, st)
}

func (a *API) deleteMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	if err := m.Delete(c.Request().Context(), id); err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxDelete, Target: fmt.Sprintf("mailbox:%d", id)})
	return c.NoContent(http.StatusNoContent)
}

// inputFields names the fields a PATCH set (never their values: one may be a password).
func inputFields(in mailpoll.Input) []string {
	b, _ := json.Marshal(in)
	var m map[string]any
	json.Unmarshal(b, &m)
	out := []string{}
	for k, v := range m {
		if v != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// testMailbox tries a mailbox's connection, login and folder now, without polling it: the
// answer (200 whether the test passed or not) says which step failed and why, so a wrong
// password or certificate shows at once rather than at the next poll.
func (a *API) testMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	res, err := m.Test(c.Request().Context(), id)
	if err != nil {
		return mailError(err)
	}
	// A test sends the stored password to the mailbox's server: who did it, and how it went, is
	// recorded like a change (an unreachable or refusing server is a failed test, not a failed action).
	d := map[string]any{"ok": res.OK, "host": res.Host}
	if !res.OK {
		d["stage"] = res.Stage
	}
	a.record(c, audit.Entry{Action: audit.MailboxTest, Target: fmt.Sprintf("mailbox:%d", id), Details: d})
	return c.JSON(http.StatusOK, res)
}
