package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// redisDBRequeue keeps this test's queue apart from TestQueueAndSweep's worker.
const redisDBRequeue = 14

// POST /tasks/trigger/process-reports: every file pending at the trigger is parsed, however
// recently it arrived, and the task's result counts them.
func TestRequeue(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		redisOpt := b.Redis(t, redisDBRequeue)
		client := asynq.NewClient(redisOpt)
		defer client.Close()
		insp := asynq.NewInspector(redisOpt)
		defer insp.Close()
		bu := setup(t, b, client, insp)
		lost := ingest.New(bu.st, nil, nil, limits(), testenv.Logger()) // stores, enqueues nothing
		var ids []int64
		for name, rel := range map[string]string{
			"a.xml": niceXML,
			"b.zip": "dmarc_report_reader/tests/fixtures/multi-report.zip",
			"c.xml": "dmarc-report-viewer/testdata/dmarc-reports/yahoo.xml",
		} {
			r, err := lost.Accept(ctx, ingest.File{Name: name, Source: "test", Data: corpusFile(t, rel)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.IngestID)
		}

		srv := asynq.NewServer(redisOpt, asynq.Config{Concurrency: 4, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeReportParse, bu.svc.HandleParse)
		mux.HandleFunc(tasks.TypeIngestRequeue, bu.svc.HandleRequeue)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()

		now := time.Now().Add(time.Second) // the files arrived just now: the sweep's grace would skip them
		task, err := tasks.NewIngestRequeueTask(now, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			waitStatus(t, bu.st, id, store.StatusProcessed)
		}
		if n := bu.totalReports(t); n != 5 {
			t.Fatalf("%d reports, want 5", n)
		}
		if info := requeueDone(t, insp, now, false); string(info.Result) != `{"enqueued":3}` {
			t.Fatalf("requeue result %s, want 3 enqueued", info.Result)
		}

		// With failed: a file that failed (as under an older parser) is read again and now
		// stored; one that cannot be read fails again, with its reason; processed files and
		// their reports are left alone.
		fixed, err := lost.Accept(ctx, ingest.File{Name: "fixed.xml", Source: "test", Data: reportXML("fixed", "192.0.2.9")})
		if err != nil {
			t.Fatal(err)
		}
		junk, err := lost.Accept(ctx, ingest.File{Name: "junk.txt", Source: "test", Data: []byte("not a report")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bu.st.Finish(ctx, fixed.IngestID, store.StatusFailed, "an older parser could not read it", 0); err != nil {
			t.Fatal(err)
		}
		if err := lost.Process(ctx, junk.IngestID); err == nil {
			t.Fatal("junk processed without error")
		}
		later := time.Now().Add(time.Minute + time.Second) // another minute: another task
		task, err = tasks.NewIngestRequeueTask(later, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, bu.st, fixed.IngestID, store.StatusProcessed)
		if info := requeueDone(t, insp, later, true); string(info.Result) != `{"enqueued":2,"reset":2}` {
			t.Fatalf("requeue result %s, want the 2 failed files reset and enqueued", info.Result)
		}
		j := waitStatus(t, bu.st, junk.IngestID, store.StatusFailed)
		if j.Attempts != 1 || j.Error == "" {
			t.Fatalf("junk after the re-run: %d attempts, %q; want one fresh attempt and a reason", j.Attempts, j.Error)
		}
		if n := bu.totalReports(t); n != 6 {
			t.Fatalf("%d reports, want 6", n)
		}
	})
}

// requeueDone waits for the requeue task of that minute and kind to complete.
func requeueDone(t *testing.T, insp *asynq.Inspector, before time.Time, failed bool) *asynq.TaskInfo {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := insp.GetTaskInfo(tasks.QueueDefault, tasks.IngestRequeueTaskID(before, failed))
		if err == nil && info.State == asynq.TaskStateCompleted {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("requeue task: %+v %v", info, err)
		}
	}
}
