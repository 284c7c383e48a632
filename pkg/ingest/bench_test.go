package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// benchBackend is the real pair when configured (the figure that matters), else embedded.
func benchBackend() testenv.Backend {
	bs := testenv.Backends()
	return bs[len(bs)-1]
}

// realXML loads the corpus's plain-XML real aggregate reports that parse, with their records.
func realXML(b *testing.B) ([][]byte, int) {
	b.Helper()
	dir, entries := corpus.ForTest(b)
	var out [][]byte
	recs := 0
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Kind != "aggregate" || e.Compression != "none" || !e.Real() || e.Malformed() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			b.Fatal(err)
		}
		// Two corpus files carry the same report (one publisher copied another's): keep one.
		_, rest, ok := bytes.Cut(data, []byte("<report_id>"))
		id, _, ok2 := bytes.Cut(rest, []byte("</report_id>"))
		if !ok || !ok2 || seen[string(id)] {
			continue
		}
		seen[string(id)] = true
		out = append(out, data)
		recs += e.Records[0]
	}
	return out, recs
}

// variant makes copy i of a report a distinct report (and a distinct file) by its report_id.
func variant(data []byte, i int) []byte {
	return bytes.Replace(data, []byte("</report_id>"), []byte(fmt.Sprintf("-v%d</report_id>", i)), 1)
}

// runPipeline accepts and processes files with the given concurrency, as `api import` does on
// one machine: each worker takes the next batch (ingest.BatchLen), stores the originals with
// AcceptBatch (one durable commit) and processes them with ProcessBatch (claim, unwrap, parse,
// store, finish). Every file must end processed.
func runPipeline(b *testing.B, bu bundle, files [][]byte, workers int) {
	b.Helper()
	ctx := context.Background()
	sizes := make([]int64, len(files))
	for i, f := range files {
		sizes[i] = int64(len(f))
	}
	var mu sync.Mutex
	next := 0
	take := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		start := next
		next += ingest.BatchLen(sizes[start:])
		return start, next
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start, end := take()
				if start >= len(files) {
					return
				}
				batch := make([]ingest.File, 0, end-start)
				for _, data := range files[start:end] {
					batch = append(batch, ingest.File{Name: "f.xml", Source: "bench", Data: data})
				}
				res, err := bu.svc.AcceptBatch(ctx, batch)
				if err != nil {
					b.Error(err)
					failed.Add(int64(len(batch)))
					continue
				}
				ids := make([]int64, len(res))
				for i, r := range res {
					ids[i] = r.IngestID
				}
				done, err := processBatch(ctx, bu, ids)
				if err != nil {
					b.Error(err)
					failed.Add(int64(len(batch)))
					continue
				}
				for _, p := range done {
					if p.Err != nil || p.Status != store.StatusProcessed {
						b.Errorf("ingest %d: %s %s %v", p.IngestID, p.Status, p.Reason, p.Err)
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d files failed", failed.Load())
	}
}

// processBatch processes a batch, through the task middleware when the bundle has one.
func processBatch(ctx context.Context, bu bundle, ids []int64) ([]ingest.Processed, error) {
	if bu.task == nil {
		return bu.svc.ProcessBatch(ctx, ids)
	}
	var done []ingest.Processed
	h := bu.task(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		var err error
		done, err = bu.svc.ProcessBatch(ctx, ids)
		return err
	}))
	err := h.ProcessTask(ctx, asynq.NewTask(tasks.TypeReportParse, nil))
	return done, err
}

// BenchmarkPipelineCorpus: import → stored → visible, over the corpus's real reports
// replicated into distinct reports (about 2,000 files per iteration).
func BenchmarkPipelineCorpus(b *testing.B) {
	base, recsPerSet := realXML(b)
	const sets = 50
	be := benchBackend()
	b.Logf("backend %s, %d reports (%d records) per iteration", be.Name, len(base)*sets, recsPerSet*sets)
	var reports, records int
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bu := setup(b, be, nil, nil)
		files := make([][]byte, 0, len(base)*sets)
		for s := range sets {
			for _, d := range base {
				files = append(files, variant(d, i*sets+s))
			}
		}
		start := time.Now()
		b.StartTimer()
		runPipeline(b, bu, files, benchWorkers())
		b.StopTimer()
		elapsed += time.Since(start)
		if n := bu.totalReports(b); n != int64(len(files)) {
			b.Fatalf("%d reports stored, want %d", n, len(files))
		}
		reports += len(files)
		records += recsPerSet * sets
	}
	b.ReportMetric(float64(reports)/elapsed.Seconds(), "reports/s")
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
}

// BenchmarkPipelineLarge: the corpus's 2,286-record report, replicated, for records/s.
func BenchmarkPipelineLarge(b *testing.B) {
	dir, _ := corpus.ForTest(b)
	data, err := os.ReadFile(filepath.Join(dir, "parsedmarc/samples/aggregate/!large-example.com!1711897200!1711983600.xml"))
	if err != nil {
		b.Fatal(err)
	}
	const copies = 40
	be := benchBackend()
	var records int
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bu := setup(b, be, nil, nil)
		files := make([][]byte, copies)
		for c := range files {
			files[c] = variant(data, i*copies+c)
		}
		start := time.Now()
		b.StartTimer()
		runPipeline(b, bu, files, 4)
		b.StopTimer()
		elapsed += time.Since(start)
		records += 2286 * copies
	}
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
}

// bigReport writes a gzipped aggregate report of about size bytes of XML.
func bigReport(size int) ([]byte, int) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	fmt.Fprint(zw, `<?xml version="1.0" encoding="UTF-8"?><feedback><report_metadata><org_name>big.example</org_name>`+
		`<email>dmarc@big.example</email><report_id>big-1</report_id><date_range><begin>1704067200</begin><end>1704153599</end></date_range>`+
		`</report_metadata><policy_published><domain>example.com</domain><p>reject</p><pct>100</pct></policy_published>`)
	rec := `<record><row><source_ip>%d.%d.%d.%d</source_ip><count>%d</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>` +
		`<identifiers><header_from>example.com</header_from><envelope_from>bounce.example.com</envelope_from></identifiers>` +
		`<auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim><spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>fail</result></spf></auth_results></record>` + "\n"
	n, written := 0, 0
	for written < size {
		k, _ := fmt.Fprintf(zw, rec, 10+n%200, n/65536%256, n/256%256, n%256, 1+n%7)
		written += k
		n++
	}
	fmt.Fprint(zw, `</feedback>`)
	zw.Close()
	return buf.Bytes(), n
}

// peakRSS reads the process's peak resident set (VmHWM) in MB from /proc.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

// BenchmarkPipelineHugeReport: one 100 MB (decompressed) report through the pipeline; reports
// the process's peak RSS and the Go heap's peak growth while it runs. Run it alone
// (make bench BENCH=HugeReport PKGS=./pkg/ingest COUNT=1) so the peak is its own.
func BenchmarkPipelineHugeReport(b *testing.B) {
	data, n := bigReport(100 << 20)
	b.Logf("100 MB report: %d records, %d bytes gzipped", n, len(data))
	be := benchBackend()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bu := setup(b, be, nil, nil)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := make(chan struct{})
		var peak atomic.Uint64
		go func() {
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}
		}()
		b.StartTimer()
		runPipeline(b, bu, [][]byte{variant(data, i)}, 1)
		b.StopTimer()
		close(stop)
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), before.HeapInuse))/(1<<20), "heap-growth-MB")
		b.ReportMetric(float64(n), "records")
	}
	b.ReportMetric(peakRSS(), "peak-RSS-MB")
}

// benchWorkers is how many files are processed at once (VIGIL_BENCH_WORKERS overrides).
func benchWorkers() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("VIGIL_BENCH_WORKERS"), &n); err == nil && n > 0 {
		return n
	}
	return 2*runtime.NumCPU() + 2
}
