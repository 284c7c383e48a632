package ingest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// redisDBRejected is this test's database on the real server (block 32–35: first run and
// operations).
const redisDBRejected = 32

// A file rejected for its content is an outcome, not a failure of the queue: its task
// completes with the outcome as its result, nothing is archived or retried, and the queue's
// failure count stays at zero (issue 19: 60 unreadable files read as a 33 % error rate).
func TestContentRejectionCompletesTask(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		redisOpt := b.Redis(t, redisDBRejected)
		client := asynq.NewClient(redisOpt)
		defer client.Close()
		insp := asynq.NewInspector(redisOpt)
		defer insp.Close()
		bu := setup(t, b, client, insp)
		ctx := context.Background()

		srv := asynq.NewServer(redisOpt, asynq.Config{Concurrency: 2, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeReportParse, bu.svc.HandleParse)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()

		bad, err := bu.svc.Accept(ctx, ingest.File{Name: "page.xml", Source: "test", Data: []byte("<html><body>not a report</body></html>")})
		if err != nil {
			t.Fatal(err)
		}
		good, err := bu.svc.Accept(ctx, ingest.File{Name: "a.xml", Source: "test", Data: corpusFile(t, niceXML)})
		if err != nil {
			t.Fatal(err)
		}
		failed := waitStatus(t, bu.st, bad.IngestID, store.StatusFailed)
		waitStatus(t, bu.st, good.IngestID, store.StatusProcessed)

		for id, want := range map[int64]ingest.ParseResult{
			bad.IngestID:  {IngestID: bad.IngestID, Status: store.StatusFailed, Reason: failed.Error},
			good.IngestID: {IngestID: good.IngestID, Status: store.StatusProcessed, Reports: 1},
		} {
			info := waitTaskState(t, insp, tasks.ReportParseTaskID(id))
			if info.State != asynq.TaskStateCompleted {
				t.Fatalf("task of ingest %d is %s (last error %q), want completed", id, info.State, info.LastErr)
			}
			var got ingest.ParseResult
			if err := json.Unmarshal(info.Result, &got); err != nil || got != want {
				t.Fatalf("task of ingest %d: result %s (%v), want %+v", id, info.Result, err, want)
			}
		}
		q, err := insp.GetQueueInfo(tasks.QueueIngest)
		if err != nil {
			t.Fatal(err)
		}
		if q.Archived != 0 || q.Retry != 0 || q.FailedTotal != 0 {
			t.Fatalf("ingest queue: %d archived, %d retrying, %d failed; want none", q.Archived, q.Retry, q.FailedTotal)
		}
	})
}

// waitTaskState waits until the task has left the pending and active states.
func waitTaskState(t *testing.T, insp *asynq.Inspector, id string) *asynq.TaskInfo {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := insp.GetTaskInfo(tasks.QueueIngest, id)
		if err == nil && info.State != asynq.TaskStatePending && info.State != asynq.TaskStateActive {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not finished after 20s (%v, %v)", id, info, err)
		}
	}
}

// redisDBBatch is TestBatchTask's database (block 48–51: ingest speed).
const redisDBBatch = 48

// Files accepted together (an upload, a mailbox poll) get one parse task, which stores them
// together and leaves each file's own outcome: a bad file among them is failed with its
// reason, the others processed, the task completed with every outcome as its result.
func TestBatchTask(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		redisOpt := b.Redis(t, redisDBBatch)
		client := asynq.NewClient(redisOpt)
		defer client.Close()
		insp := asynq.NewInspector(redisOpt)
		defer insp.Close()
		bu := setup(t, b, client, insp)
		ctx := context.Background()

		files := []ingest.File{
			{Name: "a.xml", Source: "test", Data: corpusFile(t, niceXML)},
			{Name: "page.xml", Source: "test", Data: []byte("<html><body>not a report</body></html>")},
			{Name: "b.xml", Source: "test", Data: recoveryXML(t.Name() + "-b")},
		}
		res, err := bu.svc.AcceptBatch(ctx, files)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range res {
			if r.Status != ingest.Accepted {
				t.Fatalf("%+v, want accepted", r)
			}
			ids = append(ids, r.IngestID)
		}
		// One task for the three, none of their own.
		if _, err := insp.GetTaskInfo(tasks.QueueIngest, tasks.ReportParseBatchTaskID(ids)); err != nil {
			t.Fatalf("no batch task: %v", err)
		}
		for _, id := range ids {
			if _, err := insp.GetTaskInfo(tasks.QueueIngest, tasks.ReportParseTaskID(id)); err == nil {
				t.Fatalf("ingest %d has a task of its own beside the batch's", id)
			}
		}

		srv := asynq.NewServer(redisOpt, asynq.Config{Concurrency: 2, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeReportParse, bu.svc.HandleParse)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()

		want := ingest.ParseBatchResult{}
		for i, id := range ids {
			status := store.StatusProcessed
			if i == 1 {
				status = store.StatusFailed
			}
			ing := waitStatus(t, bu.st, id, status)
			r := ingest.ParseResult{IngestID: id, Status: status, Reason: ing.Error}
			if status == store.StatusProcessed {
				r.Reports = 1
			}
			want.Files = append(want.Files, r)
		}
		info := waitTaskState(t, insp, tasks.ReportParseBatchTaskID(ids))
		if info.State != asynq.TaskStateCompleted {
			t.Fatalf("batch task is %s (last error %q), want completed", info.State, info.LastErr)
		}
		var got ingest.ParseBatchResult
		if err := json.Unmarshal(info.Result, &got); err != nil {
			t.Fatalf("result %s: %v", info.Result, err)
		}
		if len(got.Files) != len(want.Files) {
			t.Fatalf("result %+v, want %+v", got, want)
		}
		for i := range want.Files {
			if got.Files[i] != want.Files[i] {
				t.Fatalf("result %+v, want %+v", got, want)
			}
		}
		if bu.totalReports(t) != 2 {
			t.Fatalf("%d reports stored, want 2", bu.totalReports(t))
		}
	})
}
