package ingest

import (
	"context"
	"fmt"
	"sync"
)

// Group accepts the files of concurrent callers together: each caller hands over one file and
// is answered when the AcceptBatch holding it has committed. Accepting a small file alone costs
// one durable commit and one parse task; under many concurrent senders (the HTTPS intake of
// SMTP TLS reports, one report per POST) most of the intake's time went there, and a worker
// then stored one report per task. Grouped, one commit and one task serve every file that
// arrived while the previous batch was committing, so a batch is as large as the load makes
// it and a lone sender waits for no timer.
//
// One caller at a time commits (the leader); the others queue. The leader commits batches
// from the front of the queue until its own file is in, then hands the lead to the first
// caller still queued, so no caller serves the others for longer than it takes to reach its
// own file.
type Group struct {
	svc   *Service
	mu    sync.Mutex
	queue []*groupWaiter
	busy  bool // a leader is committing
}

type groupWaiter struct {
	f    File
	res  Result
	err  error
	wake chan bool // true: lead; false: answered
}

// NewGroup builds a Group on the pipeline.
func (s *Service) NewGroup() *Group { return &Group{svc: s} }

// Accept is Service.Accept, batched with the files of concurrent callers. A file is committed
// even when its caller's context ends while it waits (the batch is shared): a sender that gave
// up and sends again hears that it is a duplicate.
func (g *Group) Accept(ctx context.Context, f File) (Result, error) {
	w := &groupWaiter{f: f, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.busy {
		g.mu.Unlock()
		if lead := <-w.wake; !lead {
			return w.res, w.err
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	ctx = context.WithoutCancel(ctx)
	for mine := false; !mine; {
		batch := g.next()
		g.commit(ctx, batch)
		for _, o := range batch {
			if o == w {
				mine = true
			} else {
				o.wake <- false
			}
		}
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.mu.Unlock()
		next.wake <- true
	} else {
		g.busy = false
		g.mu.Unlock()
	}
	return w.res, w.err
}

// next takes the next batch from the front of the queue, within BatchFiles and BatchBytes.
func (g *Group) next() []*groupWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	sizes := make([]int64, len(g.queue))
	for i, w := range g.queue {
		sizes[i] = int64(len(w.f.Data))
	}
	n := BatchLen(sizes)
	batch := append([]*groupWaiter(nil), g.queue[:n]...)
	g.queue = append(g.queue[:0], g.queue[n:]...)
	return batch
}

func (g *Group) commit(ctx context.Context, batch []*groupWaiter) {
	files := make([]File, len(batch))
	for i, w := range batch {
		files[i] = w.f
	}
	res, err := g.svc.AcceptBatch(ctx, files)
	for i, w := range batch {
		if err != nil {
			w.err = fmt.Errorf("ingest: accept %q: %w", w.f.Name, err)
			continue
		}
		w.res = res[i]
	}
}
