// Package tasks is the contract between the processes: every asynq task type Vigil enqueues,
// its payload (IDs only, never file bytes) and its constructor with queue, retry, timeout and
// TaskID options. The api and scheduler enqueue with these; the worker registers handlers that
// live with their domain packages.
package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task types, named domain:action.
const (
	TypeReportParse = "report:parse"
	TypeIngestSweep = "ingest:sweep"
	// TypeIngestRequeue enqueues every pending file now, and on request every failed one
	// (POST /tasks/trigger/process-reports).
	TypeIngestRequeue = "ingest:requeue"
	TypeScheduleTick  = "schedule:tick"
)

// The queues. A worker gives each its own pool of VIGIL_WORKER_CONCURRENCY slots (one asynq
// server per queue), so ingestion never waits behind housekeeping or enrichment: a slot that
// a long task holds (an export, DNS lookups that time out) is never one a file needs.
const (
	QueueIngest  = "ingest"
	QueueDefault = "default"
)

// Queues are every queue with a priority for one server that runs them all (tests and
// benchmarks do; the worker runs a server per queue, where the weights play no part).
func Queues() map[string]int { return map[string]int{QueueIngest: 6, QueueDefault: 3, QueueEnrich: 1} }

// ReportParsePayload names the stored raw file (or, for the files accepted together, the
// files) to unwrap, parse and store.
type ReportParsePayload struct {
	IngestID  int64   `json:"ingest_id,omitempty"`
	IngestIDs []int64 `json:"ingest_ids,omitempty"`
}

// IDs are the files the task is for.
func (p ReportParsePayload) IDs() []int64 {
	if p.IngestID != 0 {
		return append([]int64{p.IngestID}, p.IngestIDs...)
	}
	return p.IngestIDs
}

// ReportParseTaskID is deterministic so enqueueing the same file twice (an upload racing the
// sweep) yields one task.
func ReportParseTaskID(ingestID int64) string { return fmt.Sprintf("report:parse:%d", ingestID) }

// NewReportParseTask parses one ingest. A file rejected for its content completes the task
// (the outcome is on the ingest and in the task's result); transient failures (database down)
// retry with asynq's backoff.
func NewReportParseTask(ingestID int64) (*asynq.Task, error) {
	b, err := json.Marshal(ReportParsePayload{IngestID: ingestID})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeReportParse, b,
		asynq.Queue(QueueIngest),
		asynq.TaskID(ReportParseTaskID(ingestID)),
		asynq.MaxRetry(12),
		asynq.Timeout(15*time.Minute),
		// Retention keeps the TaskID taken for a while after success, so a late duplicate
		// enqueue is refused rather than parsing an already-processed file again (which would
		// be harmless, but wasted work).
		asynq.Retention(time.Hour),
	), nil
}

// ReportParseBatchTaskID keys the task of files accepted together (their ids are new, so no
// other batch has the same first id and length).
func ReportParseBatchTaskID(ids []int64) string {
	return fmt.Sprintf("report:parse:batch:%d:%d", ids[0], len(ids))
}

// NewReportParseBatchTask parses the files accepted in one commit (an upload's or a mailbox
// poll's batch) together, as `api import` does: one claim, one store and one durable commit
// for all of them instead of one each, which is most of the cost of a small file. Each file
// still ends with its own outcome; a retry re-runs only the files still pending. Recovery
// (the watch, the sweep) re-enqueues pending files one by one with NewReportParseTask.
func NewReportParseBatchTask(ids []int64) (*asynq.Task, error) {
	if len(ids) == 1 {
		return NewReportParseTask(ids[0])
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("tasks: a parse batch needs files")
	}
	b, err := json.Marshal(ReportParsePayload{IngestIDs: ids})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeReportParse, b,
		asynq.Queue(QueueIngest),
		asynq.TaskID(ReportParseBatchTaskID(ids)),
		asynq.MaxRetry(12),
		asynq.Timeout(15*time.Minute),
		asynq.Retention(time.Hour),
	), nil
}

// NewReportParseRescueTask parses a file whose task was orphaned by a worker that died: a
// second task for the same file, keyed to the file's attempt count, so that it starts at
// once instead of after asynq's lease recovery and retry delay (over a minute); the orphan,
// retried later, finds the file finished.
func NewReportParseRescueTask(ingestID int64, attempt int) (*asynq.Task, error) {
	t, err := NewReportParseTask(ingestID)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeReportParse, t.Payload(),
		asynq.Queue(QueueIngest),
		asynq.TaskID(fmt.Sprintf("%s:rescue:%d", ReportParseTaskID(ingestID), attempt)),
		asynq.MaxRetry(12),
		asynq.Timeout(15*time.Minute),
		asynq.Retention(time.Hour),
	), nil
}

// IngestSweepPayload is the period the sweep belongs to; it only keys the TaskID.
type IngestSweepPayload struct {
	Period time.Time `json:"period"`
}

// NewIngestSweepTask re-enqueues files left pending; one per period whatever number of ticks.
func NewIngestSweepTask(period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(IngestSweepPayload{Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeIngestSweep, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(fmt.Sprintf("%s:%d", TypeIngestSweep, period.Unix())),
		asynq.MaxRetry(3),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(24*time.Hour),
	), nil
}

// IngestRequeuePayload: files pending since before Before are enqueued again; with Failed,
// files that failed before Before are also put back to pending and enqueued (after a parser
// fix, or once the cause of "given up after N attempts" is gone).
type IngestRequeuePayload struct {
	Before time.Time `json:"before"`
	Failed bool      `json:"failed,omitempty"`
}

// IngestRequeueTaskID keys a requeue to its minute and kind, so a double click enqueues one.
func IngestRequeueTaskID(before time.Time, failed bool) string {
	id := fmt.Sprintf("%s:%d", TypeIngestRequeue, before.Truncate(time.Minute).Unix())
	if failed {
		id += ":failed"
	}
	return id
}

// NewIngestRequeueTask enqueues again every file still pending at before (and, with failed,
// every file failed by then). Its result (the counts) stays readable for a day through
// GET /tasks/status/{task_id}.
func NewIngestRequeueTask(before time.Time, failed bool) (*asynq.Task, error) {
	b, err := json.Marshal(IngestRequeuePayload{Before: before.UTC(), Failed: failed})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeIngestRequeue, b,
		asynq.Queue(QueueDefault),
		asynq.TaskID(IngestRequeueTaskID(before, failed)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(24*time.Hour),
	), nil
}

// ScheduleTickPayload names the periodic job and its interval. The scheduler enqueues ticks;
// the tick handler turns a tick into the real task keyed to the period, so two schedulers or a
// restarted one cannot run a period twice (DESIGN.md).
type ScheduleTickPayload struct {
	Job      string   `json:"job"`
	Interval Interval `json:"interval"`
}

// Interval is a duration written as Go's duration text ("5m0s") so the queue monitor shows
// it readably (nanoseconds read as 300000000000); it also reads the bare nanoseconds that
// ticks registered by an older scheduler carry.
type Interval time.Duration

// MarshalJSON writes the duration text.
func (d Interval) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads duration text or nanoseconds.
func (d *Interval) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64
		if err := json.Unmarshal(b, &ns); err != nil {
			return fmt.Errorf("interval: want duration text such as \"5m0s\": %s", b)
		}
		*d = Interval(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("interval: %w", err)
	}
	*d = Interval(v)
	return nil
}

// NewScheduleTickTask is what the scheduler registers for each periodic job.
func NewScheduleTickTask(job string, interval time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(ScheduleTickPayload{Job: job, Interval: Interval(interval)})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeScheduleTick, b, asynq.Queue(QueueDefault), asynq.MaxRetry(2), asynq.Timeout(time.Minute)), nil
}

// Decode reads a task payload into v, marking undecodable payloads as not worth retrying.
func Decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
