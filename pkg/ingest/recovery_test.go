package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// Redis databases of the recovery tests (block 36–39 of testenv's list; 38–39: cmd/api).
const (
	redisDBWatchRedis = 36
	redisDBWatchDB    = 37
)

func recoveryXML(id string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0"?><feedback><report_metadata><org_name>recovery.example</org_name>`+
		`<email>d@recovery.example</email><report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704153599</end>`+
		`</date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`+
		`<record><row><source_ip>192.0.2.7</source_ip><count>2</count><policy_evaluated><disposition>none</disposition>`+
		`<dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>`+
		`</identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>`, id))
}

// watchBundle is a pipeline on a queue whose Redis the test can empty or cut, with its watch
// running and every recovery recorded.
type watchBundle struct {
	bundle
	insp  *asynq.Inspector
	raw   *redis.Client // straight to Redis, past any proxy
	mu    sync.Mutex
	whys  []string
	ids   []int64
	label string
	// redisFailures counts the watch's Redis commands that failed.
	redisFailures atomic.Int64
}

// failures is a go-redis hook counting failed commands.
type failures struct{ n *atomic.Int64 }

func (f failures) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f failures) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && err != redis.Nil {
			f.n.Add(1)
		}
		return err
	}
}
func (f failures) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (w *watchBundle) recovered(_ context.Context, why string) {
	w.mu.Lock()
	w.whys = append(w.whys, why)
	w.mu.Unlock()
}

func (w *watchBundle) sawRecovery(why string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, y := range w.whys {
		if y == why {
			return true
		}
	}
	return false
}

// queued says how many of the files have a parse task in the queue: their own (recovery's),
// or the one of the batch they were accepted in. It reads asynq's task keys (v0.26) itself:
// after a flush the inspector finds no queue until a worker or the asynqmon page registers
// it again, although the tasks are there and workers take them.
func (w *watchBundle) queued(t *testing.T) int {
	t.Helper()
	exists := func(taskID string) bool {
		k, err := w.raw.Exists(context.Background(), "asynq:{"+tasks.QueueIngest+"}:t:"+taskID).Result()
		if err != nil {
			t.Fatal(err)
		}
		return k == 1
	}
	if len(w.ids) > 1 && exists(tasks.ReportParseBatchTaskID(w.ids)) {
		return len(w.ids)
	}
	n := 0
	for _, id := range w.ids {
		if exists(tasks.ReportParseTaskID(id)) {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to 60 s and says how long it took. The watch checks every 50 ms
// here; the bound is wide because a loaded CI machine under -race can stall for seconds, and
// what the tests assert is that recovery happens, not its speed (the figures are logged).
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s: not within 60 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// startWatch accepts n files through a queue reached at redisAddr (a proxy, or Redis itself)
// and starts the watch.
func startWatch(t *testing.T, b testenv.Backend, st *store.Store, opt asynq.RedisClientOpt, redisAddr string, n int) *watchBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	via := opt
	via.Addr = redisAddr
	client := asynq.NewClient(via)
	insp := asynq.NewInspector(opt)
	rc := redis.NewClient(&redis.Options{Addr: redisAddr, Password: opt.Password, DB: opt.DB, MaxRetries: -1})
	raw := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	w := &watchBundle{insp: insp, raw: raw}
	rc.AddHook(failures{&w.redisFailures})
	w.st = st
	w.svc = ingest.New(st, client, asynq.NewInspector(via), limits(), testenv.Logger())
	var files []ingest.File
	for i := range n {
		files = append(files, ingest.File{Name: fmt.Sprintf("%d.xml", i), Source: "test", Data: recoveryXML(fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), i))})
	}
	res, err := w.svc.AcceptBatch(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		w.ids = append(w.ids, r.IngestID)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.svc.Watch(ctx, ingest.Watch{Redis: rc, Interval: 50 * time.Millisecond, Recovered: w.recovered})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
		insp.Close()
		rc.Close()
		raw.Close()
	})
	waitFor(t, "start-up recovery", func() bool { return w.sawRecovery("start-up") })
	return w
}

// Redis restarted without its data (here: flushed) loses every queued task; the watch
// notices within one check and enqueues every pending file again. Redis unreachable then
// back (here: a proxy cut) is recovered from the same way, as it may come back from an old
// snapshot.
func TestWatchRedis(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		opt := b.Redis(t, redisDBWatchRedis)
		proxy := testenv.NewProxy(t, opt.Addr)
		w := startWatch(t, b, b.Store(t), opt, proxy.Addr(), 5)
		if got := w.queued(t); got != 5 {
			t.Fatalf("%d of 5 files queued after accepting them", got)
		}

		if err := w.raw.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, "re-enqueue after Redis lost its data", func() bool { return w.queued(t) == 5 })
		waitFor(t, "recovery for the lost data", func() bool { return w.sawRecovery("redis lost its data") })
		t.Logf("files queued again %v after the flush", took.Round(time.Millisecond))

		// Redis down, and back without its data.
		before := w.redisFailures.Load()
		proxy.Cut()
		waitFor(t, "a check to find Redis down", func() bool { return w.redisFailures.Load() > before })
		if err := w.raw.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		proxy.Restore(t)
		took = waitFor(t, "re-enqueue once Redis answers again", func() bool { return w.queued(t) == 5 })
		waitFor(t, "recovery for Redis answering again", func() bool { return w.sawRecovery("redis answering again") })
		t.Logf("files queued again %v after Redis came back", took.Round(time.Millisecond))
	})
}

// A database crash can undo an outcome that a task already reported (the task completed;
// the file is pending again, with no task). When a task meets the database down, or the
// watch's own check does, the watch enqueues every pending file once the database answers.
// A file whose worker died (its task orphaned, the lease expired) gets a new task at once.
func TestWatchDatabaseAndOrphans(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		opt := b.Redis(t, redisDBWatchDB)
		st := b.Store(t)
		dbURL := b.DatabaseURL(t)
		var proxy *testenv.Proxy
		if b.Real() {
			// Reach PostgreSQL through a proxy the test can cut.
			proxy = testenv.NewProxy(t, "127.0.0.1:5432")
			var err error
			if st, err = store.Open(ctx, proxy.URL(t, dbURL), testenv.Logger()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		w := startWatch(t, b, st, opt, opt.Addr, 3)
		// The crash's result: outcomes undone, tasks gone (completed and forgotten).
		undo := func() {
			t.Helper()
			// The files' tasks: the batch's they were accepted in, or their own after a recovery.
			ids := []string{tasks.ReportParseBatchTaskID(w.ids)}
			for _, id := range w.ids {
				ids = append(ids, tasks.ReportParseTaskID(id))
			}
			for _, id := range ids {
				if err := w.insp.DeleteTask(tasks.QueueIngest, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
					t.Fatal(err)
				}
			}
			if w.queued(t) != 0 {
				t.Fatal("tasks still queued")
			}
		}

		t.Run("a task met the database down", func(t *testing.T) {
			undo()
			w.svc.NoteOutage(fmt.Errorf("save: %w", syscall.ECONNREFUSED))
			took := waitFor(t, "re-enqueue after the outage", func() bool { return w.queued(t) == 3 })
			t.Logf("files queued again %v after the outage", took.Round(time.Millisecond))
			waitFor(t, "recovery for the database", func() bool { return w.sawRecovery("database answering again") })
		})
		if proxy != nil {
			t.Run("the watch saw the database down", func(t *testing.T) {
				undo()
				proxy.Cut()
				time.Sleep(200 * time.Millisecond)
				if w.queued(t) != 0 {
					t.Fatal("re-enqueued while the database was down")
				}
				proxy.Restore(t)
				took := waitFor(t, "re-enqueue once the database answers", func() bool { return w.queued(t) == 3 })
				t.Logf("files queued again %v after the database came back", took.Round(time.Millisecond))
			})
		}

		t.Run("orphaned task", func(t *testing.T) {
			// What a worker killed while parsing leaves: the file claimed (one attempt), its
			// task active with a lease nobody extends, here already expired.
			id := w.ids[0]
			// The first use of a connection from before the cut fails, as after a restart.
			var ok bool
			var err error
			for range 3 {
				if _, _, ok, err = st.Claim(ctx, id); err == nil {
					break
				}
			}
			if err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			orphan(t, w.raw, tasks.QueueIngest, tasks.ReportParseTaskID(id))
			rescue := tasks.ReportParseTaskID(id) + ":rescue:1"
			took := waitFor(t, "rescue of the orphaned file", func() bool {
				_, err := w.insp.GetTaskInfo(tasks.QueueIngest, rescue)
				return err == nil
			})
			t.Logf("orphaned file enqueued again %v after its lease expired", took.Round(time.Millisecond))
			for _, other := range w.ids[1:] {
				if _, err := w.insp.GetTaskInfo(tasks.QueueIngest, tasks.ReportParseTaskID(other)+":rescue:0"); err == nil {
					t.Errorf("file %d was rescued though its task is only queued", other)
				}
			}
		})
	})
}

// orphan moves a pending task to active with an expired lease, as asynq leaves the task of
// a worker killed while running it (asynq v0.26's keys).
func orphan(t *testing.T, r *redis.Client, queue, id string) {
	t.Helper()
	ctx := context.Background()
	prefix := "asynq:{" + queue + "}:"
	if n, err := r.LRem(ctx, prefix+"pending", 0, id).Result(); err != nil || n != 1 {
		t.Fatalf("task %s not pending (%d, %v)", id, n, err)
	}
	pipe := r.TxPipeline()
	pipe.LPush(ctx, prefix+"active", id)
	pipe.ZAdd(ctx, prefix+"lease", redis.Z{Score: float64(time.Now().Add(-time.Second).Unix()), Member: id})
	pipe.HSet(ctx, prefix+"t:"+id, "state", "active")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Options().Addr, Password: r.Options().Password, DB: r.Options().DB}).ListActiveTasks(queue)
	if err != nil || len(info) != 1 || !info[0].IsOrphaned || !strings.HasSuffix(info[0].ID, id) {
		t.Fatalf("the fabricated orphan is not seen as one: %+v %v", info, err)
	}
}
