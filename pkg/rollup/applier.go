package rollup

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
)

// Applier is the one rollup writer of a process that parses files (a worker, the embedded api,
// an inline import). The after-store hook hands it each file that stored new reports (Add,
// which never waits); one goroutine (Run) takes every file handed over since its last pass and
// applies all their reports at once (Apply: summed in memory, one upsert per table per batch).
//
// Why one writer instead of a rollup:apply per file: consecutive reports from one reporter
// touch the same rollup rows (the same sources in the same dekad, month, quarter and year), so
// per-file transactions running side by side queue on each other's row locks, and each pays
// the fixed cost of some 25 upserts for a handful of rows. Batched, the rows of a thousand
// reports collapse into the same few thousand, and the pass size adapts to the load: what
// arrives while a pass runs is the next pass. See docs/architecture.md.
//
// The hand-over lives in memory: a process that dies before a pass loses nothing but time, as
// the reports stay stored without their rollup_applied row and the periodic rollup:catchup
// (and the next Apply of anything) finds them.
type Applier struct {
	r      *Rollup
	wake   chan struct{} // capacity 1: a pass is wanted
	retry  time.Duration // first wait after a failed pass
	onPass func(ctx context.Context, ingestIDs []int64)
	flush  chan struct{} // capacity 1: a Flush ends the wait of the gap

	mu      sync.Mutex
	pending []item        // files handed over and not taken by a pass yet
	stage   *stage        // rows of reports of pending files, nil when none
	added   uint64        // ingest ids handed over so far
	applied uint64        // of those, how many a finished pass took (successfully or not)
	passed  chan struct{} // closed and replaced at the end of each pass
	passes  int           // passes that applied something, for tests
	staged  int           // reports applied from the stage, for tests
	gap     time.Duration // a pass waits until this long after the previous one started
	last    time.Time     // when the previous pass started (SetGap: when it was called)
}

// NewApplier makes the process's applier; start it with Run.
func (r *Rollup) NewApplier() *Applier {
	return &Applier{r: r, wake: make(chan struct{}, 1), flush: make(chan struct{}, 1), retry: 200 * time.Millisecond, passed: make(chan struct{})}
}

// OnPass sets what runs after each pass with the files the pass took for the first time,
// whether or not it succeeded (a retry does not repeat them): the follow-up work of new
// reports (enrichment) is enqueued once per pass instead of once per file. Set it before Run.
func (a *Applier) OnPass(fn func(ctx context.Context, ingestIDs []int64)) { a.onPass = fn }

// SetGap spaces passes: each waits until gap has passed since the previous one started, unless
// a Flush asks for one. Fewer, larger passes cost less in all (rows of many reports collapse
// into the same dekad, month, quarter and year rows), while answers lag by up to gap.
func (a *Applier) SetGap(gap time.Duration) {
	a.mu.Lock()
	a.gap, a.last = gap, time.Now()
	a.mu.Unlock()
}

// spaced waits until the gap since the previous pass has passed, a Flush asks, or ctx ends.
func (a *Applier) spaced(ctx context.Context) {
	a.mu.Lock()
	wait := time.Until(a.last.Add(a.gap))
	a.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-a.flush:
		case <-ctx.Done():
		}
	}
	a.mu.Lock()
	a.last = time.Now()
	a.mu.Unlock()
}

// Add hands over a file that stored new reports, with those it inserted as far as the
// pipeline kept them (inserted may be partial or nil: the pass reads the others back). It
// never fails and blocks only to add the reports' rows to the stage, so it serves as the
// ingest pipeline's after-store hook.
func (a *Applier) Add(_ context.Context, ingestID int64, inserted []store.NewReport) error {
	a.mu.Lock()
	a.pending = append(a.pending, item{ingest: ingestID})
	a.added++
	for _, nr := range inserted {
		if a.stage == nil {
			a.stage = newStage(a.r.maxHeld)
		}
		a.stage.add(nr)
	}
	full := a.stage != nil && a.stage.full
	a.mu.Unlock()
	if full {
		// A full stage ends the spacing: what it refuses would be read back.
		select {
		case a.flush <- struct{}{}:
		default:
		}
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Flush waits until every file handed over before the call has been through a pass: the
// rollups reflect them unless a pass failed (then the catch-up will). The inline import calls
// it before it ends, so what it imported answers queries when it returns.
func (a *Applier) Flush(ctx context.Context) error {
	select {
	case a.flush <- struct{}{}:
	default:
	}
	a.mu.Lock()
	want := a.added
	for a.applied < want {
		ch := a.passed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// Run applies what Add hands over until ctx ends, then applies what is left (for at most
// drain) and returns.
func (a *Applier) Run(ctx context.Context, drain time.Duration) {
	fail := 0
	for {
		select {
		case <-a.wake:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
			for a.pass(dctx) == nil && a.hasPending() && dctx.Err() == nil {
			}
			cancel()
			return
		}
		if a.spaced(ctx); ctx.Err() != nil {
			continue // stopped while spacing: the drain above takes what waits
		}
		if err := a.pass(ctx); err != nil {
			// The database is down or refused a report: the files are retried after a pause
			// (up to maxTries passes each), and the catch-up covers what still failed.
			fail++
			if ctx.Err() == nil {
				a.r.log.Warn("rollup: pass failed; retrying", "err", err, "failures", fail)
			}
			select {
			case <-time.After(min(a.retry*time.Duration(fail), 10*time.Second)):
			case <-ctx.Done():
			}
			continue
		}
		fail = 0
	}
}

func (a *Applier) hasPending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending) > 0
}

// pass applies every file handed over so far. After an error (the database down, say) the
// files are queued again, up to maxTries passes each, so a database restart does not wait for
// the catch-up period; past that the catch-up covers them.
func (a *Applier) pass(ctx context.Context) error {
	a.mu.Lock()
	items, upto, st := a.pending, a.added, a.stage
	a.pending, a.stage = nil, nil
	a.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	ids := make([]int64, len(items))
	var first []int64
	for i, it := range items {
		ids[i] = it.ingest
		if it.tries == 0 {
			first = append(first, it.ingest)
		}
	}
	err := a.applyIngests(ctx, ids, st)
	if a.onPass != nil && len(first) > 0 {
		a.onPass(ctx, first)
	}
	a.mu.Lock()
	if err != nil {
		var again []item
		for _, it := range items {
			switch {
			case ctx.Err() != nil:
				again = append(again, it) // stopped, not failed: the drain takes them
			case it.tries+1 < maxTries:
				again = append(again, item{it.ingest, it.tries + 1})
			}
		}
		a.pending = append(again, a.pending...)
		if len(again) > 0 {
			select {
			case a.wake <- struct{}{}:
			default:
			}
		}
	}
	a.applied = upto
	a.passes++
	close(a.passed)
	a.passed = make(chan struct{})
	a.mu.Unlock()
	return err
}

// maxTries bounds the passes one file is retried in after errors.
const maxTries = 3

type item struct {
	ingest int64
	tries  int
}

// applyIngests applies the reports first stored from the given files: those st holds from
// the stage, the rest (or all, when the stage cannot be used) from the database.
func (a *Applier) applyIngests(ctx context.Context, ingestIDs []int64, st *stage) error {
	var ids []int64
	const chunk = 5000
	for start := 0; start < len(ingestIDs); start += chunk {
		var part []int64
		err := a.r.db.WithContext(ctx).Raw(`SELECT id FROM reports WHERE ingest_id IN ?`, ingestIDs[start:min(start+chunk, len(ingestIDs))]).Scan(&part).Error
		if err != nil {
			return fmt.Errorf("rollup: reports of %d ingests: %w", len(ingestIDs), err)
		}
		ids = append(ids, part...)
	}
	if st != nil && len(st.ids) > 0 {
		doms, err := a.r.applyStage(ctx, st)
		if err == nil {
			ids = slices.DeleteFunc(ids, func(id int64) bool { return st.ids[id] })
			a.r.applied(ctx, doms)
			a.mu.Lock()
			a.staged += len(st.ids)
			a.mu.Unlock()
		} else if ctx.Err() == nil {
			a.r.log.Debug("rollup: staged rows not used; applying from the database", "reports", len(st.ids), "err", err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return a.r.Apply(ctx, ids)
}
