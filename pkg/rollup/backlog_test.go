package rollup_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// The backlog counts the recent reports not applied yet, also when newer ones were applied
// first, and dates the oldest of them; applying them empties it.
func TestBacklog(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		r := rollup.New(st, nil, testenv.Logger())
		if n, oldest, err := r.Backlog(ctx); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty store: backlog %d from %v (%v), want none", n, oldest, err)
		}
		before := time.Now().Add(-time.Minute)
		_, reports := load(t, st, 7, 30)
		slices.Sort(reports)
		// Workers apply their own files: the newest reports may be applied before older ones.
		if err := r.Apply(ctx, reports[20:]); err != nil {
			t.Fatal(err)
		}
		n, oldest, err := r.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 20 || oldest.Before(before) || oldest.After(time.Now().Add(time.Minute)) {
			t.Errorf("backlog %d from %v, want 20 stored since %v", n, oldest, before)
		}
		if err := r.Apply(ctx, reports[:20]); err != nil {
			t.Fatal(err)
		}
		if n, _, err := r.Backlog(ctx); err != nil || n != 0 {
			t.Errorf("after applying all: backlog %d (%v), want 0", n, err)
		}
	})
}
