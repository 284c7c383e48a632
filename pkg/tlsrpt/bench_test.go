package tlsrpt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/tlsrpt"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// benchReport is a typical report: one STS policy, two failure details (Google's and
// Microsoft's daily reports look like this, about 1.5 KiB).
func benchReport(i int) []byte {
	return []byte(fmt.Sprintf(`{"organization-name":"Bench Mail","date-range":{"start-datetime":"2024-03-%02dT00:00:00Z","end-datetime":"2024-03-%02dT23:59:59Z"},
"contact-info":"smtp-tls-reporting@bench.example","report-id":"bench-%d","policies":[{"policy":{"policy-type":"sts",
"policy-string":["version: STSv1","mode: enforce","mx: mx1.domain%d.example","mx: mx2.domain%d.example","max_age: 604800"],
"policy-domain":"domain%d.example","mx-host":["mx1.domain%d.example","mx2.domain%d.example"]},
"summary":{"total-successful-session-count":%d,"total-failure-session-count":3},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.%d","receiving-mx-hostname":"mx1.domain%d.example","receiving-ip":"198.51.100.7","failed-session-count":2},
{"result-type":"starttls-not-supported","sending-mta-ip":"2001:db8::%x","receiving-mx-hostname":"mx2.domain%d.example","failed-session-count":1,"additional-information":"https://bench.example/info"}]}]}`,
		i%28+1, i%28+1, i, i%50, i%50, i%50, i%50, i%50, 1000+i, i%250, i%50, i, i%50))
}

// BenchmarkParse is the in-process parse speed of TLS reports (goal: ≥ 20,000 reports/s).
func BenchmarkParse(b *testing.B) {
	reps := make([][]byte, 64)
	var size int64
	for i := range reps {
		reps[i] = benchReport(i)
		size += int64(len(reps[i]))
	}
	b.SetBytes(size / int64(len(reps)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tlsrpt.Parse(reps[i%len(reps)], tlsrpt.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	// On a shared, loaded machine wall time mostly measures the wait for a core; the CPU
	// time this process spent says what one core does.
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "reports/cpu-s")
}

// BenchmarkIntake is HTTPS POST intake end to end into the database: concurrent senders post
// distinct reports over loopback to the real route table (no rate limit), the pipeline
// stores each original, and a worker's batches parse and store them all; the clock stops
// when the last report is in its tables (goal: ≥ 1,000 reports/s on PostgreSQL). It runs on
// PostgreSQL when VIGIL_TEST_DATABASE_URL is set, else on SQLite.
func BenchmarkIntake(b *testing.B) {
	be := testenv.Backends()[len(testenv.Backends())-1]
	if os.Getenv("VIGIL_TEST_DATABASE_URL") == "" {
		b.Log("VIGIL_TEST_DATABASE_URL unset: on SQLite")
	}
	st := be.Store(b)
	b.Logf("database: %s", st.Dialect())
	svc := tlsrpt.New(tlsrpt.Deps{Store: st, Log: testenv.Logger()})
	in := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 50 << 20}, testenv.Logger())
	in.HandleKind(unwrap.FormatTLSRPT, svc.HandlePart)
	svc = tlsrpt.New(tlsrpt.Deps{Store: st, Ingest: in, Log: testenv.Logger()})
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, Ingest: in, TLSReports: svc, Log: testenv.Logger()}))
	defer srv.Close()
	const senders = 8
	var seq atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	ids := make(chan int64, b.N)
	var wg sync.WaitGroup
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(seq.Add(1)) - 1
				if i >= b.N {
					return
				}
				resp, err := http.Post(srv.URL+"/tlsrpt", tlsrpt.TypeJSON, bytes.NewReader(benchReport(i+1_000_000*int(start.UnixNano()%1000))))
				if err != nil {
					b.Error(err)
					return
				}
				var ans struct {
					IngestID int64 `json:"ingest_id"`
				}
				decodeJSON(resp, &ans)
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("POST: %d", resp.StatusCode)
					return
				}
				ids <- ans.IngestID
			}
		}()
	}
	// The worker: parse what has arrived in batches, as report:parse tasks would.
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []int64
		flush := func() {
			if len(batch) == 0 {
				return
			}
			res, err := in.ProcessBatch(context.Background(), batch)
			if err != nil {
				b.Error(err)
			}
			for _, r := range res {
				if r.Status != store.StatusProcessed {
					b.Errorf("ingest %d: %s %s", r.IngestID, r.Status, r.Reason)
				}
			}
			batch = batch[:0]
		}
		for id := range ids {
			if batch = append(batch, id); len(batch) == ingest.BatchFiles {
				flush()
			}
		}
		flush()
	}()
	wg.Wait()
	posted := time.Since(start)
	close(ids)
	<-done
	b.Logf("%d reports: posted in %v, all stored %v after the first POST", b.N, posted, time.Since(start))
	b.StopTimer()
	var n int64
	if err := st.DB().Table("tls_reports").Count(&n).Error; err != nil || n != int64(b.N) {
		b.Fatalf("%d reports stored, want %d (%v)", n, b.N, err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reports/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "reports/cpu-s")
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func decodeJSON(resp *http.Response, v any) {
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
}
