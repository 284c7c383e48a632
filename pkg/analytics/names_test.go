package analytics

import (
	"context"
	"testing"

	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestNamesOfManyRows: domainNames and orgNames take one id per row; 70,000 rows of a few
// domains are looked up once each (they used to become a statement of 70,000 parameters, which
// PostgreSQL refuses: /api/senders for all domains answered 500 from the per-source path).
func TestNamesOfManyRows(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		e := newEngine(st)
		if err := st.DB().Exec("INSERT INTO rollup_domains (id, name) VALUES (1, 'a.example'), (2, 'b.example')").Error; err != nil {
			t.Fatal(err)
		}
		if err := st.DB().Exec("INSERT INTO rollup_orgs (id, org_key, org_name) VALUES (3, 'k', 'Org')").Error; err != nil {
			t.Fatal(err)
		}
		ids := make([]int32, 70_000)
		for i := range ids {
			ids[i] = int32(1 + i%2)
		}
		names, err := e.domainNames(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if names[1] != "a.example" || names[2] != "b.example" || len(names) != 2 {
			t.Errorf("domain names %v", names)
		}
		for i := range ids {
			ids[i] = 3
		}
		orgs, err := e.orgNames(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if orgs[3] != [2]string{"k", "Org"} || len(orgs) != 1 {
			t.Errorf("org names %v", orgs)
		}
	})
}
