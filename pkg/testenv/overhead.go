package testenv

import (
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// CPUTime is the CPU time (user and system) this process has used so far: on a shared
// machine the CPU a load costs is steadier than its wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OverheadRounds is VIGIL_BENCH_ROUNDS, or def.
func OverheadRounds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return def
}

// Overhead measures what instrumentation costs a load: rounds of the same work without
// (bare) and with it, alternated and with the order swapped every round, so that neither side
// always runs first or on a machine that just got busier. Each call does one side's work for
// a round and returns how many units (requests, reports) it did. It reports, over the rounds,
// the median and the min–max of the ratios with/without of CPU time per unit (the process's
// user+system time: client and server when both are in the process) and of units per second
// of wall time, and the medians of each side; every round is logged.
func Overhead(b *testing.B, rounds int, unit string, bare, instrumented func() int) {
	b.Helper()
	type side struct{ cpu, wall []float64 } // CPU µs per unit, units per wall second
	var sides [2]side
	var cpuRatio, rateRatio []float64
	for r := range rounds {
		var cpu, rate [2]float64
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			work := bare
			if i == 1 {
				work = instrumented
			}
			c0, w0 := CPUTime(), time.Now()
			n := work()
			c, w := CPUTime()-c0, time.Since(w0)
			if n == 0 {
				b.Fatal("overhead: a round did no work")
			}
			cpu[i] = float64(c.Microseconds()) / float64(n)
			rate[i] = float64(n) / w.Seconds()
			sides[i].cpu = append(sides[i].cpu, cpu[i])
			sides[i].wall = append(sides[i].wall, rate[i])
		}
		cpuRatio = append(cpuRatio, cpu[1]/cpu[0])
		rateRatio = append(rateRatio, rate[1]/rate[0])
		b.Logf("round %d: bare %.1f µs CPU/%s, %.1f %s/s; instrumented %.1f µs CPU/%s, %.1f %s/s; CPU ratio %.4f, throughput ratio %.4f",
			r+1, cpu[0], unit, rate[0], unit, cpu[1], unit, rate[1], unit, cpuRatio[r], rateRatio[r])
	}
	b.ReportMetric(median(sides[0].cpu), "bare-cpu-µs/"+unit)
	b.ReportMetric(median(sides[1].cpu), "instrumented-cpu-µs/"+unit)
	b.ReportMetric(median(sides[0].wall), "bare-"+unit+"/s")
	b.ReportMetric(median(sides[1].wall), "instrumented-"+unit+"/s")
	b.ReportMetric(median(cpuRatio), "cpu-ratio-median")
	b.ReportMetric(slices.Min(cpuRatio), "cpu-ratio-min")
	b.ReportMetric(slices.Max(cpuRatio), "cpu-ratio-max")
	b.ReportMetric(median(rateRatio), "throughput-ratio-median")
	b.ReportMetric(slices.Min(rateRatio), "throughput-ratio-min")
	b.ReportMetric(slices.Max(rateRatio), "throughput-ratio-max")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
