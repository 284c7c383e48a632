package export

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
)

// syntheticRecords is a records view of n rows made in memory: it measures the CSV and XLSX
// encoders alone, without the database (BenchmarkCSVRecords measures the whole path).
func syntheticRecords(n int) view {
	return view{name: "records", cols: recordCols, each: func(_ context.Context, _ store.Filter, emit func([]any) error) error {
		row := make([]any, len(recordCols))
		begin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			copy(row, []any{itoa(int64(i / 10)), "12345678901234567890", "google.com", "example.com", begin, begin.Add(24 * time.Hour),
				itoa(int64(i)), "2001:db8::1", int64(i % 1000), "none", "pass", "fail", "[]", "example.com", "bounce.example.com", "",
				`[{"domain":"example.com","selector":"s1","result":"pass","human_result":""}]`, `[{"domain":"example.com","scope":"mfrom","result":"fail","human_result":""}]`})
			if err := emit(row); err != nil {
				return err
			}
		}
		return nil
	}}
}

func benchEncoder(b *testing.B, n int, write func(io.Writer, view) (int64, error)) {
	v := syntheticRecords(n)
	var peak uint64
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := write(io.Discard, v); err != nil {
			b.Fatal(err)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if after.HeapAlloc > before.HeapAlloc {
			peak = max(peak, after.HeapAlloc-before.HeapAlloc)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/1e6, "MB-heap-left")
}

// BenchmarkCSVEncode1M: the CSV encoder alone on 1M records.
func BenchmarkCSVEncode1M(b *testing.B) {
	benchEncoder(b, 1_000_000, func(w io.Writer, v view) (int64, error) { return writeCSV(context.Background(), w, v, store.Filter{}) })
}

// BenchmarkXLSXEncode200k: the XLSX writer alone on 200,000 records (the sheet's XML and the
// zip's deflate; no database): go test -run - -bench XLSXEncode -cpuprofile cpu.out ./pkg/export
func BenchmarkXLSXEncode200k(b *testing.B) {
	benchEncoder(b, 200_000, func(w io.Writer, v view) (int64, error) { return writeXLSX(context.Background(), w, v, store.Filter{}) })
}
