package rollup_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// remove takes ids out of the rollups and deletes them, as retention does, in one transaction
// (run again when PostgreSQL picks it as a deadlock victim: subtractions written in parts
// lock rows out of order).
func remove(ctx context.Context, st *store.Store, r *rollup.Rollup, ids []int64) ([]int64, error) {
	for {
		stored, err := removeOnce(ctx, st, r, ids)
		if !rollup.Retryable(err) {
			return stored, err
		}
	}
}

func removeOnce(ctx context.Context, st *store.Store, r *rollup.Rollup, ids []int64) ([]int64, error) {
	var stored []int64
	err := st.WriteDerived(ctx, func(tx *gorm.DB) error {
		var err error
		if stored, _, err = r.Remove(ctx, tx, ids); err != nil || len(stored) == 0 {
			return err
		}
		for _, q := range []string{`DELETE FROM records WHERE report_id IN ?`, `DELETE FROM ingest_reports WHERE report_id IN ?`,
			`DELETE FROM rollup_applied WHERE report_id IN ?`, `DELETE FROM reports WHERE id IN ?`} {
			if err := tx.Exec(q, stored).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return stored, err
}

// TestRemoveEqualsApplyingWhatRemains: after reports are removed (in batches, some twice, some
// never applied, some concurrently with applies of others), every rollup table, first and last
// days included, equals the rollups of the remaining reports applied from scratch.
func TestRemoveEqualsApplyingWhatRemains(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		_, ids := load(t, st, 21, 400)
		r := rollup.New(st, nil, testenv.Logger())
		// The last 40 reports are applied only while removals run, or never.
		applied, late := ids[:len(ids)-40], ids[len(ids)-40:]
		if err := r.Apply(ctx, applied); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, st)

		rng := rand.New(rand.NewPCG(7, 8))
		gone := map[int64]bool{}
		var removals [][]int64
		for range 8 {
			var batch []int64
			for range 1 + rng.IntN(30) {
				id := ids[rng.IntN(len(ids))]
				batch = append(batch, id)
				gone[id] = true
			}
			removals = append(removals, batch)
		}
		removals = append(removals, []int64{999999, -1}) // no report: nothing happens

		// Small accumulators: subtractions written in parts agree too.
		parts := rollup.New(st, nil, testenv.Logger())
		rollup.SetMaxHeld(parts, 40)
		var wg sync.WaitGroup
		errs := make(chan error, len(removals)+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.Apply(ctx, late[:20])
		}()
		for i, batch := range removals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rr := r
				if i%2 == 1 {
					rr = parts
				}
				_, err := remove(ctx, st, rr, batch)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Removing again finds nothing stored.
		if stored, err := remove(ctx, st, r, removals[0]); err != nil || len(stored) != 0 {
			t.Fatalf("a second removal found %v stored (%v), want none", stored, err)
		}
		// The catch-up applies the late reports that remain (and nothing removed).
		for {
			n, err := r.CatchUp(ctx, 50)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		got := snapshot(t, st)
		if got == before {
			t.Fatal("removing reports left the rollups as they were")
		}

		var remain []int64
		if err := st.DB().Raw(`SELECT id FROM reports ORDER BY id`).Scan(&remain).Error; err != nil {
			t.Fatal(err)
		}
		for _, id := range remain {
			if gone[id] {
				t.Fatalf("report %d was removed but is still stored", id)
			}
		}
		if want := len(ids) - len(gone); len(remain) != want || want < len(ids)/2 {
			t.Fatalf("%d reports remain, want %d of %d", len(remain), want, len(ids))
		}
		reset(t, st)
		if err := r.Apply(ctx, remain); err != nil {
			t.Fatal(err)
		}
		if want := snapshot(t, st); got != want {
			t.Fatalf("rollups after removals differ from the remaining reports applied afresh:\n%s", firstDiff(got, want))
		}
		t.Logf("%d of %d reports removed", len(gone), len(ids))

		// Removing every report leaves every rollup table empty.
		if _, err := remove(ctx, st, r, slices.Clone(remain)); err != nil {
			t.Fatal(err)
		}
		for _, f := range rollup.Families {
			for _, table := range f.Tables() {
				var n int64
				if err := st.DB().Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s keeps %d rows after every report was removed", table, n)
				}
			}
		}
	})
}
