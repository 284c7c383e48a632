package rollup_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

var update = flag.Bool("update", false, "rewrite the analytics migrations from rollup.Families")

// The migrations are generated from the family definitions the code reads and writes by;
// this keeps the two from drifting apart.
func TestMigrationMatchesFamilies(t *testing.T) {
	files := []struct {
		name string
		text func(string) string
	}{{"00003_analytics.sql", rollup.Migration}, {"00006_narrow_rollups.sql", rollup.NarrowMigration}}
	for _, dialect := range []string{"postgres", "sqlite"} {
		for _, file := range files {
			path := filepath.Join("..", "..", "migrations", dialect, file.name)
			want := file.text(dialect)
			if *update {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("%s differs from rollup.Families; run go test ./pkg/rollup -run TestMigrationMatchesFamilies -update", path)
			}
		}
	}
}

// The narrow families' migration fills their tables from the rollups already there with what
// applying the reports writes, year tables included (the data crosses a new year).
func TestNarrowMigrationBackfill(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		_, ids := loadWith(t, st, synth.Config{Seed: 17, Domains: 3, Sources: 60, Reporters: 4, Days: 90, Reports: 200,
			RecordsPerReport: 4, MultiDayShare: 0.3, End: time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC)})
		if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		var narrow []string
		for _, f := range rollup.Families {
			if f.Migration == 6 {
				narrow = append(narrow, f.Tables()...)
			}
		}
		applied := snapshotOf(t, st, narrow)
		var years int
		if err := st.DB().Raw("SELECT COUNT(DISTINCT period) FROM rollup_ip_year").Scan(&years).Error; err != nil || years != 2 {
			t.Fatalf("rollup_ip_year has %d years (%v), want 2", years, err)
		}
		for _, table := range narrow {
			if err := st.DB().Exec("DELETE FROM " + table).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, stmt := range strings.Split(rollup.Backfill(string(st.Dialect())), ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if err := st.DB().Exec(stmt).Error; err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		if got := snapshotOf(t, st, narrow); got != applied {
			t.Fatalf("the migration's backfill differs from applying the reports:\n%s", firstDiff(got, applied))
		}
	})
}
