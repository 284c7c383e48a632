package rollup_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

func appliedCount(t *testing.T, st *store.Store) int64 {
	t.Helper()
	var n int64
	if err := st.DB().Raw("SELECT COUNT(*) FROM rollup_applied").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// startApplier runs an applier until the test ends.
func startApplier(t *testing.T, r *rollup.Rollup) *rollup.Applier {
	t.Helper()
	a := r.NewApplier()
	runApplier(t, a)
	return a
}

// runApplier runs a until the test ends or stop is called (which returns once Run has).
func runApplier(t *testing.T, a *rollup.Applier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx, 30*time.Second)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// Two processes' appliers (an import and a worker parsing uploads) handed files concurrently,
// with a catch-up racing them, write exactly the rollups one Apply of every report writes; Flush
// returns only once every file handed over before it is in the rollups.
func TestApplierConcurrentEqualsOneApply(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, ids := load(t, st, 21, 400)
		if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		once := snapshot(t, st)
		reset(t, st)

		// Two Rollups stand for two processes: each has its own applier.
		imp := startApplier(t, rollup.New(st, nil, testenv.Logger()))
		wrk := startApplier(t, rollup.New(st, nil, testenv.Logger()))
		var wg sync.WaitGroup
		for i, a := range []*rollup.Applier{imp, wrk} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Interleaved halves, one file at a time as files finish; some files twice
				// (a retried task), which must add nothing.
				for j := i; j < len(ingests); j += 2 {
					a.Add(ctx, ingests[j], nil)
					if j%5 == 0 {
						a.Add(ctx, ingests[len(ingests)-1-j], nil)
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rollup.New(st, nil, testenv.Logger()).CatchUp(ctx, 60); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		for _, a := range []*rollup.Applier{imp, wrk} {
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := appliedCount(t, st); got != int64(len(ids)) {
			t.Fatalf("after Flush %d reports are rolled up, want %d", got, len(ids))
		}
		if got := snapshot(t, st); got != once {
			t.Fatalf("concurrent appliers gave other rollups than one apply:\n%s", firstDiff(got, once))
		}
	})
}

// Files handed over just before the process stops are applied before Run returns.
func TestApplierDrainsOnStop(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ingests, ids := load(t, st, 22, 120)
		a := rollup.New(st, nil, testenv.Logger()).NewApplier()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stopped before it ever ran a pass
		for _, id := range ingests {
			a.Add(context.Background(), id, nil)
		}
		a.Run(ctx, 30*time.Second)
		if got := appliedCount(t, st); got != int64(len(ids)) {
			t.Fatalf("after stopping %d reports are rolled up, want %d", got, len(ids))
		}
		// Flush has nothing left to wait for.
		fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
		defer fcancel()
		if err := a.Flush(fctx); err != nil {
			t.Fatalf("Flush after the drain: %v", err)
		}
	})
}

// Passes take what arrived while the previous one ran: a burst of files is applied in a few
// passes, not one per file (what made the rollups throttle ingestion).
func TestApplierCoalesces(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, ids := load(t, st, 23, 40*24)
		r := rollup.New(st, nil, testenv.Logger())
		a := startApplier(t, r)
		for _, id := range ingests {
			a.Add(ctx, id, nil)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := appliedCount(t, st); got != int64(len(ids)) {
			t.Fatalf("%d reports rolled up, want %d", got, len(ids))
		}
		if p := rollup.Passes(a); p > len(ingests)/4 {
			t.Errorf("%d files took %d passes, want at most %d", len(ingests), p, len(ingests)/4)
		}
	})
}

// OnPass hears every file handed over, once per hand-over, in as many calls as there were
// passes (not one per file): the follow-up work of new reports is enqueued per pass.
func TestApplierOnPassNamesEachFileOnce(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, _ := load(t, st, 24, 40*12)
		a := rollup.New(st, nil, testenv.Logger()).NewApplier()
		var mu sync.Mutex
		heard := map[int64]int{}
		calls := 0
		a.OnPass(func(_ context.Context, ids []int64) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			for _, id := range ids {
				heard[id]++
			}
		})
		runApplier(t, a)
		for _, id := range ingests {
			a.Add(ctx, id, nil)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ingests {
			if heard[id] != 1 {
				t.Errorf("file %d heard %d times, want once", id, heard[id])
			}
		}
		if len(heard) != len(ingests) {
			t.Errorf("%d files heard, want %d", len(heard), len(ingests))
		}
		if p := rollup.Passes(a); calls != p {
			t.Errorf("%d calls for %d passes", calls, p)
		}
	})
}

// With a gap (the inline import's), files wait for the gap or a Flush: a Flush applies
// everything handed over in one pass, the files after it wait again, and a stop applies what
// waits.
func TestApplierGapWaitsForFlush(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ingests, ids := load(t, st, 25, 40*6)
		a := rollup.New(st, nil, testenv.Logger()).NewApplier()
		a.SetGap(time.Hour)
		stop := runApplier(t, a)
		first, rest := ingests[:len(ingests)/2], ingests[len(ingests)/2:]
		for _, id := range first {
			a.Add(ctx, id, nil)
			time.Sleep(2 * time.Millisecond) // handed over one by one, as files finish
		}
		time.Sleep(100 * time.Millisecond)
		if got := appliedCount(t, st); got != 0 {
			t.Fatalf("%d reports rolled up before the gap or a Flush, want 0", got)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		half := appliedCount(t, st)
		if half == 0 || half == int64(len(ids)) {
			t.Fatalf("after the first Flush %d of %d reports are rolled up, want the first half", half, len(ids))
		}
		if p := rollup.Passes(a); p != 1 {
			t.Errorf("%d files took %d passes, want 1", len(first), p)
		}
		for _, id := range rest {
			a.Add(ctx, id, nil)
		}
		time.Sleep(100 * time.Millisecond)
		if got := appliedCount(t, st); got != half {
			t.Fatalf("%d reports rolled up after the first Flush and a wait, want %d", got, half)
		}
		stop() // stopping applies what waits
		if got := appliedCount(t, st); got != int64(len(ids)) {
			t.Fatalf("after stopping %d reports are rolled up, want %d", got, len(ids))
		}
		if p := rollup.Passes(a); p != 2 {
			t.Errorf("%d passes in all, want 2", p)
		}
	})
}
