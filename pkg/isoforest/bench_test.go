package isoforest

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared, overloaded machine it tells the
// work done better than the wall clock (report both; divide by the cores for a wall estimate).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// features is the width of the ML job's feature vector (pkg/ml).
const features = 12

func randomRows(n int) [][]float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	X := make([][]float64, n)
	for i := range X {
		x := make([]float64, features)
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		X[i] = x
	}
	return X
}

// BenchmarkTrain100k is the figure: train on 100,000 source IPs (< 5 s), threshold
// included (which scores all of them).
func BenchmarkTrain100k(b *testing.B) {
	X := randomRows(100_000)
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := Fit(X, Options{Seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkScore1M is the figure: score 1,000,000 IPs (< 2 s).
func BenchmarkScore1M(b *testing.B) {
	f, err := Fit(randomRows(10_000), Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	X := randomRows(1_000_000)
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		f.ScoreAll(X, 0)
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(len(X))*float64(b.N)/b.Elapsed().Seconds(), "ips/s")
}
