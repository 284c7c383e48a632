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
	"github.com/vigilhq/vigil/pkg/route"
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

func (a *API) record(c echo.Context, e audit.Entry) { route.Record(c, a.Audit, a.log, e) }
