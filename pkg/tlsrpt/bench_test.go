package tlsrpt_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/tlsrpt"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
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

// BenchmarkIntake is HTTPS POST intake end to end into the database, as deployed: concurrent
// senders post distinct reports over loopback to the real route table (no rate limit); the
// intake parses each, stores the originals of concurrent POSTs together (ingest.Group) and
// enqueues their parse task in Redis; an asynq worker with the default concurrency
// (VIGIL_WORKER_CONCURRENCY: max(4, 2 × cores)) parses and stores them. The clock stops when
// the last report is in its tables (goal: ≥ 1,000 reports/s on PostgreSQL). It runs on
// PostgreSQL and Redis when the test variables are set, else on SQLite and miniredis.
// Throughput is bounded by senders ÷ the latency of one answer, and on a loaded machine a
// commit may wait 100 ms for the disk: hence the runs with 32 and 128 concurrent senders.
func BenchmarkIntake(b *testing.B) {
	for _, senders := range []int{32, 128} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) { benchIntake(b, senders) })
	}
}

func benchIntake(b *testing.B, senders int) {
	be := testenv.Backends()[len(testenv.Backends())-1]
	if !be.Real() {
		b.Log("VIGIL_TEST_DATABASE_URL / VIGIL_TEST_REDIS_URL unset: on SQLite and miniredis")
	}
	st := be.Store(b)
	b.Logf("database: %s", st.Dialect())
	opt := be.Redis(b, 57)
	client := asynq.NewClient(opt)
	defer client.Close()
	in := ingest.New(st, client, nil, ingest.Limits{FileBytes: 50 << 20}, testenv.Logger())
	svc := tlsrpt.New(tlsrpt.Deps{Store: st, Ingest: in, Log: testenv.Logger()})
	in.HandleKindBatch(unwrap.FormatTLSRPT, svc.KindBatch())
	worker := asynq.NewServer(opt, asynq.Config{Concurrency: max(4, 2*runtime.NumCPU()), Queues: tasks.Queues(), LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeReportParse, in.HandleParse)
	if err := worker.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer worker.Shutdown()
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, Ingest: in, TLSReports: svc, Log: testenv.Logger()}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var stored int64
	count := func() {
		if err := st.DB().Table("tls_reports").Count(&stored).Error; err != nil {
			b.Fatal(err)
		}
	}
	count()
	base := stored
	var seq atomic.Int64
	run := time.Now().UnixNano() % 1000 // distinct reports in every run of the benchmark
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
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
				resp, err := hc.Post(srv.URL+"/tlsrpt", tlsrpt.TypeJSON, bytes.NewReader(benchReport(i+1_000_000*int(run))))
				if err != nil {
					b.Error(err)
					return
				}
				var ans tlsrpt.IntakeResult
				decodeJSON(resp, &ans)
				if resp.StatusCode != http.StatusAccepted || ans.Status != ingest.Accepted {
					b.Errorf("POST: %d %+v", resp.StatusCode, ans)
					return
				}
			}
		}()
	}
	wg.Wait()
	posted := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for count(); stored-base < int64(b.N); count() {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reports stored after 5 minutes", stored-base, b.N)
		}
		time.Sleep(10 * time.Millisecond)
	}
	all := time.Since(start)
	b.StopTimer()
	b.Logf("%d reports: posted in %v, all stored %v after the first POST", b.N, posted, all)
	b.ReportMetric(float64(b.N)/all.Seconds(), "reports/s")
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
