package forecast

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkForecast1000Domains is the figure: forecasts for 1,000 domains (< 2 s),
// each domain a failure-rate and a volume series of 91 days, 14 days ahead.
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
	for i := 0; i < b.N; i++ {
		for _, y := range series {
			if _, err := HoltWinters(y, 7, 14); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "domains/s")
}
