package export_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Benchmarks of the renderers on synthetic data (pkg/synth), reporting rows/s and the peak
// growth of the Go heap while rendering (sampled every 5 ms over the heap after a GC before
// the run: what the export adds to a server).
//
//	VIGIL_BENCH_DATABASE_URL=URL  a database filled by vigil-synth (make bench-data), read only
//	VIGIL_BENCH_REPORTS=N         otherwise generate N reports (~10 records each) on SQLite
//	                              (default 2000)
//
// Run: make bench PKGS=./pkg/export BENCH=. COUNT=3 BENCHTIME=1x
var benchData = sync.OnceValues(func() (*store.Store, error) {
	ctx := context.Background()
	if dsn := os.Getenv("VIGIL_BENCH_DATABASE_URL"); dsn != "" {
		return store.Open(ctx, dsn, testenv.Logger())
	}
	n, _ := strconv.Atoi(os.Getenv("VIGIL_BENCH_REPORTS"))
	if n <= 0 {
		n = 2000
	}
	dir, err := os.MkdirTemp("", "vigil-export-bench")
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, "sqlite://"+dir+"/vigil.db", testenv.Logger())
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	g := synth.New(synth.Config{Seed: 3, Domains: 10, Sources: 5000, Reporters: 12, Days: 365, End: dataEnd, Reports: n, RecordsPerReport: 10})
	_, err = synth.Write(ctx, st, g, 2, nil)
	return st, err
})

func benchService(b *testing.B) (*export.Service, *store.Store) {
	st, err := benchData()
	if err != nil {
		b.Fatal(err)
	}
	an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()})
	return export.New(export.Deps{Store: st, Analytics: an, Dir: b.TempDir(), Log: testenv.Logger()}), st
}

// heapPeak samples the live heap until stop is called and returns the peak growth in bytes.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
					peak.Store(m.HeapAlloc - base)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func benchRender(b *testing.B, view, format string, f store.Filter) {
	svc, _ := benchService(b)
	ctx := context.Background()
	var rows, bytes int64
	var peak uint64
	b.ResetTimer()
	for range b.N {
		stop := heapPeak()
		var w counter
		n, err := svc.Render(ctx, &w, view, format, f)
		peak = max(peak, stop())
		if err != nil {
			b.Fatal(err)
		}
		rows, bytes = rows+n, bytes+w.n
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
	b.ReportMetric(float64(bytes)/float64(b.N)/1e6, "MB-file/op")
	b.ReportMetric(float64(peak)/1e6, "MB-heap-peak-growth")
}

// BenchmarkCSVRecords: every record, streamed (the target: >= 200,000 rows/s, heap
// growth < 50 MB for 1M records).
func BenchmarkCSVRecords(b *testing.B) { benchRender(b, "records", "csv", store.Filter{}) }

// BenchmarkXLSXRecords: every record into one sheet (target: 1M in < 30 s, < 400 MB).
func BenchmarkXLSXRecords(b *testing.B) { benchRender(b, "records", "xlsx", store.Filter{}) }

// BenchmarkPDFDomainYear: the summary of the busiest domain over the data's last year.
func BenchmarkPDFDomainYear(b *testing.B) {
	_, st := benchService(b)
	doms, err := st.ListDomains(context.Background(), store.Filter{})
	if err != nil || len(doms) == 0 {
		b.Fatalf("no domains (%v)", err)
	}
	top := doms[0]
	for _, d := range doms {
		if d.MessageCount > top.MessageCount {
			top = d
		}
	}
	end := top.LastReport.Truncate(24 * time.Hour).Add(24 * time.Hour)
	benchRender(b, "report", "pdf", store.Filter{Domain: top.Domain, Start: end.AddDate(-1, 0, 0), End: end})
}

var _ = io.Discard
