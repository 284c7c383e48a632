package rollup_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// A report the database refuses to add up (its count takes a rollup sum past BIGINT: the
// parser no longer lets such counts in, but rows stored before could) must not hold back the
// other reports of its batch: they are applied, and the error names the refused report.
func TestApplyIsolatesARefusedReport(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		_, first := load(t, st, 31, 60)
		r := rollup.New(st, nil, testenv.Logger())
		if err := r.Apply(ctx, first); err != nil {
			t.Fatal(err)
		}
		_, ids := load(t, st, 32, 60)
		bad := ids[37]
		// One record near BIGINT's limit: alone it fits, added to the rows the reports before
		// it filled it does not.
		if err := st.DB().Exec(`UPDATE records SET count = 9223372036854775000
			WHERE id = (SELECT MIN(id) FROM records WHERE report_id = ?)`, bad).Error; err != nil {
			t.Fatal(err)
		}
		err := r.Apply(ctx, ids)
		applied := func() map[int64]bool {
			var got []int64
			if err := st.DB().Raw("SELECT report_id FROM rollup_applied").Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			m := map[int64]bool{}
			for _, id := range got {
				m[id] = true
			}
			return m
		}()
		for _, id := range ids {
			if id != bad && !applied[id] {
				t.Fatalf("report %d not applied (err %v): one refused report held back its batch", id, err)
			}
		}
		// SQLite turns an overflowing integer sum into a float instead of refusing it; there
		// the report may go in. Where the database refuses it, the error says which one.
		if !applied[bad] && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("report %d:", bad))) {
			t.Fatalf("report %d not applied, error %v: want it named", bad, err)
		}
		if b.Real() && applied[bad] {
			t.Fatalf("PostgreSQL applied report %d whose counts overflow BIGINT", bad)
		}
	})
}
