package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/enrich/dnstest"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// BenchmarkEnrich100k enriches 100,000 distinct addresses end to end (PTR, forward
// confirmation, GeoIP, written to enrich_ips) in batches of the enrich:ips size, against the
// in-process DNS server answering after 1 ms; half the addresses have a confirmed PTR, the
// rest NXDOMAIN. It reports addresses per second and the peak Go heap (sampled every 10 ms).
// Batches run VIGIL_BENCH_WORKERS at a time (default 4: a worker's default
// VIGIL_WORKER_CONCURRENCY on 2 cores runs four enrich:ips tasks at once); VIGIL_BENCH_IPS
// changes the count. Run: make bench PKGS=./pkg/enrich BENCH=Enrich100k BENCHTIME=1x COUNT=3
func BenchmarkEnrich100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_IPS")); err == nil && v > 0 {
		n = v
	}
	workers := 4
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	dns := dnstest.Start(b)
	dns.Delay = time.Millisecond
	ips := make([]netip.Addr, n)
	for i := range ips {
		ip := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		ips[i] = ip
		if i%2 == 0 {
			dns.Mail(ip.String(), fmt.Sprintf("out-%d.mail.example-esp.com", i))
		}
	}
	city, asn := geoFiles(b, b.TempDir())
	for _, be := range testenv.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Store(b)
			r, _ := NewResolver(dns.Addr, 2*time.Second)
			svc := New(Deps{Store: st, Resolver: r, Geo: geo.Open(geo.Config{CityPath: city, ASNPath: asn}, testenv.Logger()), Log: testenv.Logger()})
			ctx := context.Background()
			var peak atomic.Uint64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := st.DB().Exec("DELETE FROM enrich_ips").Error; err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				stop := sampleHeap(&peak)
				b.StartTimer()
				start := time.Now()
				batches := make(chan []netip.Addr)
				errs := make(chan error, workers)
				var wg sync.WaitGroup
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for batch := range batches {
							if _, err := svc.Enrich(ctx, batch); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				for lo := 0; lo < len(ips); lo += svc.cfg.BatchSize {
					batches <- ips[lo:min(lo+svc.cfg.BatchSize, len(ips))]
				}
				close(batches)
				wg.Wait()
				select {
				case err := <-errs:
					b.Fatal(err)
				default:
				}
				el := time.Since(start)
				stop()
				b.ReportMetric(float64(len(ips))/el.Seconds(), "ips/s")
			}
			var count int64
			st.DB().Raw("SELECT COUNT(*) FROM enrich_ips").Scan(&count)
			if count != int64(len(ips)) {
				b.Fatalf("%d cache rows, want %d", count, len(ips))
			}
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		})
	}
}

func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
