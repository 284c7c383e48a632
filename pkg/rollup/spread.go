package rollup

import (
	"hash/fnv"
	"math/bits"
	"slices"
	"time"
)

// Days are UTC days numbered from 1970-01-01 (day 0), the form every rollup period is kept in:
// an integer compares, indexes and groups the same way on both database dialects.
const secondsPerDay = 86400

// DayOf is the UTC day number of t.
func DayOf(t time.Time) int32 { return int32(floorDiv(t.Unix(), secondsPerDay)) }

// DayTime is the start of day d.
func DayTime(d int32) time.Time { return time.Unix(int64(d)*secondsPerDay, 0).UTC() }

// MonthOf is the day number of the first day of d's month: month rollups use it as their period.
func MonthOf(d int32) int32 {
	t := DayTime(d)
	return DayOf(time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC))
}

// NextMonth is the first day of the month after d's.
func NextMonth(d int32) int32 {
	t := DayTime(d)
	return DayOf(time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC))
}

// YearOf is the day number of the first day of d's year: year rollups use it as their period.
func YearOf(d int32) int32 {
	return DayOf(time.Date(DayTime(d).Year(), 1, 1, 0, 0, 0, 0, time.UTC))
}

// NextYear is the first day of the year after d's.
func NextYear(d int32) int32 {
	return DayOf(time.Date(DayTime(d).Year()+1, 1, 1, 0, 0, 0, 0, time.UTC))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Span is a report's period cut at UTC midnights: the days it overlaps (with positive length)
// and by how many seconds. A report is spread over these days pro rata (DESIGN.md): a record's
// messages go to each day in proportion to the overlap.
type Span struct {
	First   int32   // day number of the first day
	Overlap []int64 // seconds of the period falling on day First+i
	Total   int64   // sum of Overlap
}

// NewSpan cuts [begin, end). DMARC dates are whole seconds; anything finer is ignored. A
// period of zero or negative length (begin == end happens; the parser warns) counts whole on
// the day of begin.
func NewSpan(begin, end time.Time) Span {
	b, e := begin.Unix(), end.Unix()
	first := DayOf(begin)
	if e <= b {
		return Span{First: first, Overlap: []int64{1}, Total: 1}
	}
	last := int32(floorDiv(e-1, secondsPerDay))
	s := Span{First: first, Overlap: make([]int64, 0, int(last-first)+1), Total: e - b}
	for d := first; d <= last; d++ {
		lo, hi := max(b, int64(d)*secondsPerDay), min(e, int64(d+1)*secondsPerDay)
		s.Overlap = append(s.Overlap, hi-lo)
	}
	return s
}

// Days is the number of days the span covers.
func (s Span) Days() int { return len(s.Overlap) }

// Split divides count messages over the span's days by largest remainder, so the parts add up
// to count exactly and each part is the exact pro rata share rounded down or up: each day first
// gets floor(count × overlap / total); the messages left over (fewer than the days) go one each
// to the days with the largest remainders. Ties (equal remainders, as on whole days in the
// middle of a long report) are broken by rotating the days by tie, so many small cells of one
// weekly report do not all land on its first day; tie comes from the cell (see TieKey), which
// makes the result deterministic and independent of the order cells are processed in.
//
// out is reused when it has room; the result has one entry per day of the span. The arithmetic
// is exact in 128 bits, so no count or span length loses precision.
func (s Span) Split(count int64, tie uint64, out []int64) []int64 {
	n := len(s.Overlap)
	out = slices.Grow(out[:0], n)[:n]
	if n == 1 {
		out[0] = count
		return out
	}
	if count <= 0 {
		clear(out)
		return out
	}
	rem := make([]uint64, n)
	left := count
	for i, o := range s.Overlap {
		hi, lo := bits.Mul64(uint64(count), uint64(o))
		q, r := bits.Div64(hi, lo, uint64(s.Total)) // hi < Total since count*o/Total <= count
		out[i], rem[i] = int64(q), r
		left -= int64(q)
	}
	if left == 0 {
		return out
	}
	rot := int(tie % uint64(n))
	order := make([]int, n)
	for i := range order {
		order[i] = (rot + i) % n
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for _, i := range order[:left] {
		out[i]++
	}
	return out
}

// TieKey is the tie-break of a cell: the messages of one report from one source with one
// outcome and compliance verdict, the finest grain rollups keep (every rollup table is a sum of
// these cells, so all of them agree with each other day by day).
func TieKey(reportID int64, ip [16]byte, outcome int8, matched bool) uint64 {
	h := fnv.New64a()
	var b [8 + 16 + 2]byte
	for i := range 8 {
		b[i] = byte(reportID >> (8 * i))
	}
	copy(b[8:], ip[:])
	b[24] = byte(outcome)
	if matched {
		b[25] = 1
	}
	h.Write(b[:])
	return h.Sum64()
}
