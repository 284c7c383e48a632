package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// gateEnqueuer records the files of each parse task; the first enqueue waits for release, so
// that a test can hold the group's leader in its commit while others queue.
type gateEnqueuer struct {
	entered, release chan struct{}
	mu               sync.Mutex
	batches          [][]int64
}

func (g *gateEnqueuer) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	var p tasks.ReportParsePayload
	if err := tasks.Decode(t, &p); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.batches = append(g.batches, p.IDs())
	first := len(g.batches) == 1
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
	}
	return &asynq.TaskInfo{}, nil
}

// TestGroupBatches: callers that arrive while a batch commits are accepted together in the
// next batches (within BatchFiles), one parse task each, and every caller hears its own file.
func TestGroupBatches(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		enq := &gateEnqueuer{entered: make(chan struct{}), release: make(chan struct{})}
		bu := setup(t, b, enq, nil)
		g := bu.svc.NewGroup(1) // one leader: the batches are known
		const waiting = ingest.BatchFiles + 8
		results := make([]ingest.Result, waiting+1)
		errs := make([]error, waiting+1)
		var wg sync.WaitGroup
		call := func(i int) {
			defer wg.Done()
			results[i], errs[i] = g.Accept(context.Background(), ingest.File{Name: fmt.Sprintf("f%d", i), Source: "test", Data: []byte(fmt.Sprintf("file %d", i))})
		}
		wg.Add(1)
		go call(0) // the leader, held in its enqueue
		<-enq.entered
		for i := 1; i <= waiting; i++ {
			wg.Add(1)
			go call(i)
		}
		for deadline := time.Now().Add(time.Minute); g.Queued() < waiting; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d callers queued, want %d", g.Queued(), waiting)
			}
		}
		close(enq.release)
		wg.Wait()
		var ids []int64
		for i, r := range results {
			if errs[i] != nil || r.Status != ingest.Accepted {
				t.Fatalf("caller %d: %+v %v", i, r, errs[i])
			}
			ing, err := bu.st.GetIngest(context.Background(), r.IngestID)
			if err != nil || ing.Filename != fmt.Sprintf("f%d", i) {
				t.Errorf("caller %d got ingest %d named %q (%v)", i, r.IngestID, ing.Filename, err)
			}
			ids = append(ids, r.IngestID)
		}
		var sizes []int
		var queued []int64
		for _, bt := range enq.batches {
			sizes = append(sizes, len(bt))
			queued = append(queued, bt...)
		}
		if !slices.Equal(sizes, []int{1, ingest.BatchFiles, 8}) {
			t.Errorf("parse tasks of %v files, want [1 %d 8]", sizes, ingest.BatchFiles)
		}
		slices.Sort(ids)
		slices.Sort(queued)
		if !slices.Equal(ids, queued) {
			t.Errorf("queued files %v, want %v", queued, ids)
		}
	})
}

// TestGroupConcurrent: many callers on several leaders, half of them sending bytes another
// caller sends too; each distinct file is accepted once and its copies are told they are
// duplicates of that same ingest.
func TestGroupConcurrent(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		bu := setup(t, b, nil, nil)
		g := bu.svc.NewGroup(ingest.GroupLeads)
		const callers = 200
		results := make([]ingest.Result, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				results[i], err = g.Accept(context.Background(), ingest.File{Name: "f", Source: "test", Data: []byte(fmt.Sprintf("file %d", i/2))})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i := 0; i < callers; i += 2 {
			a, d := results[i], results[i+1]
			if a.Status == ingest.Duplicate {
				a, d = d, a
			}
			if a.Status != ingest.Accepted || d.Status != ingest.Duplicate || a.IngestID != d.IngestID || a.IngestID == 0 {
				t.Errorf("file %d: %+v and %+v, want one accepted and one duplicate of it", i/2, results[i], results[i+1])
			}
		}
	})
}
