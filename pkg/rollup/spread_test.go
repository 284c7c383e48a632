package rollup_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
)

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func TestSpanDays(t *testing.T) {
	t.Parallel()
	d := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		begin, end time.Time
		overlap    []int64
	}{
		{"one hour", d.Add(10 * time.Hour), d.Add(11 * time.Hour), []int64{3600}},
		{"one day, end inclusive style", d, d.Add(24*time.Hour - time.Second), []int64{86399}},
		{"one day to next midnight", d, d.AddDate(0, 0, 1), []int64{86400}},
		{"noon to noon", d.Add(12 * time.Hour), d.Add(36 * time.Hour), []int64{43200, 43200}},
		{"four days", d, d.AddDate(0, 0, 4), []int64{86400, 86400, 86400, 86400}},
		{"zero length", d.Add(time.Hour), d.Add(time.Hour), []int64{1}},
		{"end before begin", d.Add(time.Hour), d, []int64{1}},
		{"before 1970", time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 12, 0, 0, 0, time.UTC), []int64{43200, 43200}},
	}
	for _, c := range cases {
		s := rollup.NewSpan(c.begin, c.end)
		if s.First != rollup.DayOf(c.begin) || !slices.Equal(s.Overlap, c.overlap) || s.Total != sum(c.overlap) {
			t.Errorf("%s: span = first %d %v total %d, want first %d %v", c.name, s.First, s.Overlap, s.Total, rollup.DayOf(c.begin), c.overlap)
		}
	}
	if got := rollup.DayOf(time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)); got != -1 {
		t.Errorf("DayOf(1969-12-31T23:59:59Z) = %d, want -1", got)
	}
	if got := rollup.DayTime(rollup.MonthOf(rollup.DayOf(time.Date(2024, 2, 29, 5, 0, 0, 0, time.UTC)))); !got.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("MonthOf(2024-02-29) = %v", got)
	}
	if got := rollup.DayTime(rollup.NextMonth(rollup.DayOf(time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)))); !got.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextMonth(2024-12-31) = %v", got)
	}
}

func TestSplitExact(t *testing.T) {
	t.Parallel()
	d := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	four := rollup.NewSpan(d, d.AddDate(0, 0, 4))
	// Noon to noon two days later: half a day, a whole day, half a day.
	noon := rollup.NewSpan(d.Add(12*time.Hour), d.Add(60*time.Hour))
	// 18:00 to 18:00 two days later: a quarter, a whole day, three quarters.
	uneven := rollup.NewSpan(d.Add(18*time.Hour), d.Add(66*time.Hour))
	cases := []struct {
		name  string
		span  rollup.Span
		count int64
		tie   uint64
		want  []int64
	}{
		{"divides evenly", four, 100, 0, []int64{25, 25, 25, 25}},
		{"remainder to the largest fraction", uneven, 10, 0, []int64{1, 5, 4}}, // 1.25, 5, 3.75
		{"equal fractions, tie 0", noon, 10, 0, []int64{3, 5, 2}},              // 2.5, 5, 2.5
		{"equal fractions, tie rotated", noon, 10, 2, []int64{2, 5, 3}},
		{"one message, four equal days, tie 0", four, 1, 0, []int64{1, 0, 0, 0}},
		{"one message, four equal days, tie 3", four, 1, 3, []int64{0, 0, 0, 1}},
		{"three messages, four days, tie 2", four, 3, 2, []int64{1, 0, 1, 1}},
		{"single day", rollup.NewSpan(d, d.Add(time.Hour)), 7, 99, []int64{7}},
		{"largest count", four, math.MaxInt64, 0, []int64{2305843009213693952, 2305843009213693952, 2305843009213693952, 2305843009213693951}},
	}
	for _, c := range cases {
		got := c.span.Split(c.count, c.tie, nil)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: Split(%d) = %v, want %v", c.name, c.count, got, c.want)
		}
	}
}

// Property: parts add up to the count, each is the pro rata share rounded down or up, the
// result does not depend on what the output buffer held, and repeating gives the same answer.
func TestSplitProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	buf := make([]int64, 0, 8)
	for i := 0; i < 20000; i++ {
		begin := base.Add(time.Duration(rng.Int64N(400*24*3600)) * time.Second)
		var length time.Duration
		switch rng.IntN(4) {
		case 0:
			length = time.Duration(rng.Int64N(3600)) * time.Second
		case 1:
			length = time.Duration(rng.Int64N(2*86400)) * time.Second
		case 2:
			length = time.Duration(rng.Int64N(10*86400)) * time.Second
		default:
			length = time.Duration(rng.Int64N(40*86400)) * time.Second
		}
		span := rollup.NewSpan(begin, begin.Add(length))
		count := rng.Int64N(1000)
		if i%50 == 0 {
			count = rng.Int64N(math.MaxInt64)
		}
		tie := rng.Uint64()
		got := span.Split(count, tie, buf)
		if len(got) != span.Days() || sum(got) != count {
			t.Fatalf("Split(%d) over %d days = %v (sum %d)", count, span.Days(), got, sum(got))
		}
		for d, part := range got {
			exact := float64(count) * float64(span.Overlap[d]) / float64(span.Total)
			if float64(part) < math.Floor(exact)*(1-1e-12)-1 || float64(part) > math.Ceil(exact)*(1+1e-12)+1 {
				t.Fatalf("day %d gets %d, pro rata share %.3f", d, part, exact)
			}
			if count < 1<<40 && (float64(part) < math.Floor(exact) || float64(part) > math.Ceil(exact)) {
				t.Fatalf("day %d gets %d, want floor or ceil of %.6f", d, part, exact)
			}
		}
		again := span.Split(count, tie, []int64{9, 9, 9})
		if !slices.Equal(again, got) {
			t.Fatalf("Split is not stable: %v then %v", got, again)
		}
		buf = got
	}
}

// Reports of 1 hour, 1 day, 4 days and 3 years: totals preserved per report, and a 3-year report
// of many cells is split quickly.
func TestSplitReportLengths(t *testing.T) {
	t.Parallel()
	begin := time.Date(2021, 6, 1, 6, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		length time.Duration
		days   int
	}{
		{"1 hour", time.Hour, 1},
		{"1 day", 24 * time.Hour, 2}, // 06:30 to 06:30 touches two days
		{"4 days", 4 * 24 * time.Hour, 5},
		{"3 years", 3 * 365 * 24 * time.Hour, 1096},
	} {
		span := rollup.NewSpan(begin, begin.Add(c.length))
		if span.Days() != c.days {
			t.Errorf("%s: %d days, want %d", c.name, span.Days(), c.days)
		}
		start := time.Now()
		var out []int64
		perDay := make([]int64, span.Days())
		var total int64
		for cellN := int64(0); cellN < 2000; cellN++ {
			count := cellN*7 + 1
			total += count
			out = span.Split(count, uint64(cellN), out)
			if sum(out) != count {
				t.Fatalf("%s: cell of %d split into %d", c.name, count, sum(out))
			}
			for i, v := range out {
				perDay[i] += v
			}
		}
		if sum(perDay) != total {
			t.Errorf("%s: days add up to %d, want %d", c.name, sum(perDay), total)
		}
		if el := time.Since(start); el > 3*time.Second && !raceEnabled {
			t.Errorf("%s: 2000 cells took %v", c.name, el)
		}
		if c.days == 1096 {
			// Rotating ties keeps many small cells spread out: no day of the long report is
			// left far from its share.
			share := float64(total) * 86400 / float64(span.Total)
			for i := 1; i < len(perDay)-1; i++ {
				if math.Abs(float64(perDay[i])-share) > 0.2*share+5 {
					t.Fatalf("3 years: day %d has %d messages, share %.1f", i, perDay[i], share)
				}
			}
		}
	}
}

// Periods of every grain nest and follow each other without gaps.
func TestGrains(t *testing.T) {
	t.Parallel()
	day := func(s string) int32 {
		tm, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return rollup.DayOf(tm)
	}
	cases := []struct {
		g           rollup.Grain
		d           string
		start, next string
	}{
		{rollup.GrainDay, "2024-02-29", "2024-02-29", "2024-03-01"},
		{rollup.GrainDekad, "2024-02-10", "2024-02-01", "2024-02-11"},
		{rollup.GrainDekad, "2024-02-11", "2024-02-11", "2024-02-21"},
		{rollup.GrainDekad, "2024-02-29", "2024-02-21", "2024-03-01"},
		{rollup.GrainDekad, "2023-12-31", "2023-12-21", "2024-01-01"},
		{rollup.GrainMonth, "2024-02-29", "2024-02-01", "2024-03-01"},
		{rollup.GrainQuarter, "2024-06-30", "2024-04-01", "2024-07-01"},
		{rollup.GrainQuarter, "2023-11-21", "2023-10-01", "2024-01-01"},
		{rollup.GrainYear, "2024-11-21", "2024-01-01", "2025-01-01"},
		{rollup.GrainYear, "1969-12-31", "1969-01-01", "1970-01-01"},
	}
	for _, c := range cases {
		if got := c.g.Start(day(c.d)); got != day(c.start) {
			t.Errorf("%v start of %s: %s, want %s", c.g, c.d, rollup.DayTime(got).Format(time.DateOnly), c.start)
		}
		if got := c.g.Next(day(c.d)); got != day(c.next) {
			t.Errorf("%v after %s: %s, want %s", c.g, c.d, rollup.DayTime(got).Format(time.DateOnly), c.next)
		}
	}
	for d := day("2023-01-01"); d < day("2025-01-01"); d++ {
		for g := rollup.GrainDekad; g <= rollup.GrainYear; g++ {
			s := g.Start(d)
			if s > d || g.Next(d) <= d || (g-1).Start(s) != s || g.Start(g.Next(d)-1) != s {
				t.Fatalf("%v of %s does not nest: start %d next %d", g, rollup.DayTime(d).Format(time.DateOnly), s, g.Next(d))
			}
		}
	}
}
