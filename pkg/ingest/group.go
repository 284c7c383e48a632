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
// Up to a few callers commit at once (leaders); the others queue. A leader commits one batch:
// its own file and the files queued first; then it hands the lead to the first caller still
// queued, so no caller serves the others for longer than one commit. More than one leader keeps the intake busy while a commit
// waits for the disk: with one, a slow flush (a loaded database) stalls every sender.
type Group struct {
	svc      *Service
	maxLeads int
	mu       sync.Mutex
	queue    []*groupWaiter
	leads    int // leaders committing
}

type groupWaiter struct {
	f    File
	res  Result
	err  error
	wake chan bool // true: lead; false: answered
}

// GroupLeads is how many batches a Group commits at once by default.
const GroupLeads = 4

// NewGroup builds a Group on the pipeline committing up to leads batches at once (at least 1).
func (s *Service) NewGroup(leads int) *Group { return &Group{svc: s, maxLeads: max(1, leads)} }

// Accept is Service.Accept, batched with the files of concurrent callers. A file is committed
// even when its caller's context ends while it waits (the batch is shared): a sender that gave
// up and sends again hears that it is a duplicate.
func (g *Group) Accept(ctx context.Context, f File) (Result, error) {
	w := &groupWaiter{f: f, wake: make(chan bool, 1)}
	g.mu.Lock()
	if g.leads >= g.maxLeads {
		g.queue = append(g.queue, w)
		g.mu.Unlock()
		if lead := <-w.wake; !lead {
			return w.res, w.err
		}
		// Handed the lead: taken off the queue by the previous leader.
	} else {
		g.leads++
		g.mu.Unlock()
	}
	batch := g.next(w)
	g.commit(context.WithoutCancel(ctx), batch)
	for _, o := range batch[1:] {
		o.wake <- false
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.queue = g.queue[1:]
		g.mu.Unlock()
		next.wake <- true
	} else {
		g.leads--
		g.mu.Unlock()
	}
	return w.res, w.err
}

// next is the leader's batch: its own file, then the files queued first, within BatchFiles
// and BatchBytes.
func (g *Group) next(lead *groupWaiter) []*groupWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	sizes := make([]int64, 0, len(g.queue)+1)
	sizes = append(sizes, int64(len(lead.f.Data)))
	for _, w := range g.queue {
		sizes = append(sizes, int64(len(w.f.Data)))
	}
	n := BatchLen(sizes) - 1
	batch := append([]*groupWaiter{lead}, g.queue[:n]...)
	g.queue = g.queue[n:]
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
