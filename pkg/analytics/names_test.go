package analytics

import (
	"context"
	"fmt"
	"testing"

	"github.com/vigilhq/vigil/pkg/testenv"
)

// A caller may pass one id per row of an answer: far more ids than a statement takes
// parameters (65,535 on PostgreSQL, 32,766 on SQLite). Every id is still named, repeats and
// unknown ids included.
func TestNameLookupsTakeAnyNumberOfIDs(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		const n = 2500
		series := fmt.Sprintf("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) ", n)
		for _, q := range []string{
			"INSERT INTO rollup_domains (id, name) SELECT i, 'd' || i || '.example' FROM s",
			"INSERT INTO rollup_orgs (id, org_key, org_name) SELECT i, 'k' || i, 'Org ' || i FROM s",
		} {
			if err := st.DB().Exec(series + q).Error; err != nil {
				t.Fatal(err)
			}
		}
		ids := make([]int32, 0, 70_000)
		for len(ids) < 70_000 {
			ids = append(ids, int32(len(ids)%(n+10)+1)) // ids n+1..n+10 are unknown
		}
		doms, err := newEngine(st).domainNames(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		orgs, err := newEngine(st).orgNames(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(doms) != n || len(orgs) != n {
			t.Fatalf("named %d domains and %d orgs, want %d each", len(doms), len(orgs), n)
		}
		for i := int32(1); i <= n; i++ {
			if doms[i] != fmt.Sprintf("d%d.example", i) || orgs[i] != [2]string{fmt.Sprintf("k%d", i), fmt.Sprintf("Org %d", i)} {
				t.Fatalf("id %d: %q, %q", i, doms[i], orgs[i])
			}
		}
	})
}
