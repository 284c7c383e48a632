package rollup

import (
	"fmt"
	"time"
)

// Grain is the time grain of a rollup table. Grains nest: every dekad lies in one month,
// every month in one quarter, every quarter in one year, so a window is cut into whole
// periods of the coarsest grain that fits and edges of finer ones.
type Grain int8

const (
	GrainDay Grain = iota
	// GrainDekad is a third of a month: days 1–10, 11–20 and 21 to the end.
	GrainDekad
	GrainMonth
	GrainQuarter
	GrainYear
)

var grainNames = [...]string{GrainDay: "day", GrainDekad: "dekad", GrainMonth: "month", GrainQuarter: "quarter", GrainYear: "year"}

func (g Grain) String() string { return grainNames[g] }

// Start is the first day of the period of grain g holding day d: the period column of g's
// tables.
func (g Grain) Start(d int32) int32 {
	t := DayTime(d)
	switch g {
	case GrainDekad:
		return d - int32(t.Day()-1) + int32(min((t.Day()-1)/10, 2)*10)
	case GrainMonth:
		return MonthOf(d)
	case GrainQuarter:
		return DayOf(time.Date(t.Year(), (t.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC))
	case GrainYear:
		return YearOf(d)
	}
	return d
}

// startsOf is the period of day d at every grain.
func startsOf(d int32) [GrainYear + 1]int32 {
	var out [GrainYear + 1]int32
	for g := range out {
		out[g] = Grain(g).Start(d)
	}
	return out
}

// Next is the first day of the period after the one holding d.
func (g Grain) Next(d int32) int32 {
	switch g {
	case GrainDekad:
		if s := g.Start(d); DayTime(s).Day() < 21 {
			return s + 10
		}
		return NextMonth(d)
	case GrainMonth:
		return NextMonth(d)
	case GrainQuarter:
		t := DayTime(g.Start(d))
		return DayOf(time.Date(t.Year(), t.Month()+3, 1, 0, 0, 0, 0, time.UTC))
	case GrainYear:
		return NextYear(d)
	}
	return d + 1
}

// startSQL is the SQL for g.Start of the day number in col, per dialect.
func (g Grain) startSQL(dialect, col string) string {
	pg := dialect == "postgres"
	switch g {
	case GrainDekad:
		dom := fmt.Sprintf("(CAST(strftime('%%d', %s * 86400, 'unixepoch') AS INTEGER) - 1)", col)
		least := "MIN"
		if pg {
			dom, least = fmt.Sprintf("(EXTRACT(DAY FROM DATE '1970-01-01' + %s)::integer - 1)", col), "LEAST"
		}
		return fmt.Sprintf("(%s - %s + %s(%s / 10, 2) * 10)", col, dom, least, dom)
	case GrainMonth, GrainQuarter, GrainYear:
		if pg {
			return fmt.Sprintf("(date_trunc('%s', DATE '1970-01-01' + %s)::date - DATE '1970-01-01')", g, col)
		}
		// julianday('1970-01-01') is 2440587.5.
		first := fmt.Sprintf("strftime('%%Y-%%m-01', %s * 86400, 'unixepoch')", col)
		switch g {
		case GrainQuarter:
			first = fmt.Sprintf("printf('%%s-%%02d-01', strftime('%%Y', %s * 86400, 'unixepoch'), (CAST(strftime('%%m', %s * 86400, 'unixepoch') AS INTEGER) - 1) / 3 * 3 + 1)", col, col)
		case GrainYear:
			first = fmt.Sprintf("strftime('%%Y-01-01', %s * 86400, 'unixepoch')", col)
		}
		return fmt.Sprintf("CAST(julianday(%s) - 2440587.5 AS INTEGER)", first)
	}
	return col
}
