package forecast

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine it tells the work done
// better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForecast1000Domains is the figure: forecasts for 1,000 domains (< 2 s),
// each domain a failure-rate and a volume series of 91 days, 14 days ahead, spread over the
// cores as pkg/ml's ForecastAll does.
func BenchmarkForecast1000Domains(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	series := make([][]float64, 2000)
	for i := range series {
		y := make([]float64, 91)
		base := rng.Float64() * 1000
		for j := range y {
			y[j] = base + float64(j%7)*base/20 + rng.NormFloat64()*base/50
		}
		series[i] = y
	}
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		next := make(chan []float64, len(series))
		for _, y := range series {
			next <- y
		}
		close(next)
		var wg sync.WaitGroup
		for w := 0; w < runtime.GOMAXPROCS(0); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for y := range next {
					if _, err := HoltWinters(y, 7, 14); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "domains/s")
}
