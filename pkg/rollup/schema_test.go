package rollup_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/pkg/rollup"
)

var update = flag.Bool("update", false, "rewrite the analytics migrations from rollup.Families")

// The migrations are generated from the family definitions the code reads and writes by;
// this keeps the two from drifting apart.
func TestMigrationMatchesFamilies(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		path := filepath.Join("..", "..", "migrations", dialect, "00003_analytics.sql")
		want := rollup.Migration(dialect)
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
			t.Errorf("%s differs from rollup.Migration(%q); run go test ./pkg/rollup -run TestMigrationMatchesFamilies -update", path, dialect)
		}
	}
}
