package benchimport

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
)

func TestCPUTicksOfThisProcess(t *testing.T) {
	t.Parallel()
	dir := fmt.Sprintf("/proc/%d", os.Getpid())
	before, ok := cpuTicks(dir)
	if !ok {
		t.Skip("no /proc on this system: the benchmark reports no CPU times here")
	}
	// Burn about 200 ms of CPU: at 100 ticks a second the count must move.
	x := 0
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	after, _ := cpuTicks(dir)
	if after <= before {
		t.Fatalf("CPU ticks %d then %d after 200 ms of work (%d loops)", before, after, x)
	}
	if _, ok := cpuTicks("/proc/0"); ok {
		t.Fatal("read CPU ticks of a process that does not exist")
	}
}

// TestWatchPostgresCountsBackendCPU runs a query that keeps a real server's backend busy and
// checks that the watcher saw that backend's CPU time.
func TestWatchPostgresCountsBackendCPU(t *testing.T) {
	base := os.Getenv("VIGIL_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("set VIGIL_TEST_DATABASE_URL (a PostgreSQL on this machine) to test the backend watcher")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, base, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := &options{pgURL: base}
	stop := o.watchPostgres(bcase{backend: "postgres"})
	start := time.Now()
	var n int64
	// A pure CPU query in the server.
	if err := st.DB().WithContext(ctx).Raw("SELECT count(*) FROM generate_series(1, 3000000) AS g WHERE g % 7 = 3").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	cpu := stop()
	if n != 428572 {
		t.Fatalf("query answered %d", n)
	}
	// About half a CPU-second on this machine; other tests' backends on the same database
	// only add. A watcher that finds no backend gives 0.
	if cpu < 50*time.Millisecond {
		t.Fatalf("watcher saw %v of backend CPU for a %v CPU-bound query", cpu, took)
	}
	if none := (&options{pgURL: base}).watchPostgres(bcase{backend: "sqlite"})(); none != 0 {
		t.Fatalf("SQLite run reported %v of PostgreSQL CPU", none)
	}
	t.Logf("query %v, backend CPU seen %v", took, cpu)
}
