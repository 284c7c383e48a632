package analytics

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
)

func d(s string) int32 {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return rollup.DayOf(t)
}

func (s span) String() string {
	f := func(ok bool, v int32) string {
		if !ok {
			return "…"
		}
		return rollup.DayTime(v).Format("01-02")
	}
	return f(s.hasLo, s.lo) + ".." + f(s.hasHi, s.hi)
}

func (p plan) String() string {
	var out []string
	for _, pt := range p.parts {
		sign := "+"
		if pt.neg {
			sign = "-"
		}
		out = append(out, sign+pt.grain.String()+" "+pt.sp.String())
	}
	return strings.Join(out, " ")
}

// How windows are cut: whole months (and years) from month (and year) tables; edge days
// added, or the edge month taken whole less the days outside when that reads fewer rows;
// first/last-day questions never subtract.
func TestPlanWindow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to string // "" is open
		tiers    tiering
		years    bool // the grains of the narrow source families, not day and month only
		want     string
	}{
		{"", "", monthsNet, false, "+month …..…"},
		{"2024-03-01", "", monthsNet, false, "+month 03-01..…"},
		{"2024-03-02", "", monthsNet, false, "+month 03-01..… -day 03-01..03-02"},
		{"2024-03-02", "", monthsExact, false, "+month 04-01..… +day 03-02..04-01"},
		{"2024-03-20", "", monthsNet, false, "+month 04-01..… +day 03-20..04-01"},
		{"", "2024-06-29", monthsNet, false, "+month …..07-01 -day 06-29..07-01"},
		{"", "2024-06-05", monthsNet, false, "+month …..06-01 +day 06-01..06-05"},
		{"2024-03-02", "2024-06-29", monthsNet, false, "+month 03-01..07-01 -day 03-01..03-02 -day 06-29..07-01"},
		{"2024-05-03", "2024-05-27", monthsNet, false, "+month 05-01..06-01 -day 05-01..05-03 -day 05-27..06-01"},
		{"2024-05-03", "2024-05-10", monthsNet, false, "+day 05-03..05-10"},
		{"2024-05-03", "2024-05-27", monthsExact, false, "+day 05-03..05-27"},
		{"2024-05-20", "2024-06-10", monthsNet, false, "+day 05-20..06-01 +day 06-01..06-10"},
		{"2024-05-03", "2024-06-10", daysOnly, true, "+day 05-03..06-10"},
		// The narrow source families: a trailing year ending late in its year takes that year
		// whole less what is after the window (empty); dekads at the edges; quarters.
		{"", "", monthsNet, true, "+year …..…"},
		{"2023-11-21", "2024-11-21", monthsNet, true,
			"+year 01-01..01-01 +month 12-01..01-01 +dekad 11-21..12-01 -month 12-01..01-01 -dekad 11-21..12-01"},
		{"2023-11-21", "2024-11-21", monthsExact, true,
			"+month 12-01..01-01 +dekad 11-21..12-01 +quarter 01-01..10-01 +month 10-01..11-01 +dekad 11-01..11-21"},
		{"2023-01-01", "2025-01-01", monthsExact, true, "+year 01-01..01-01"},
		{"2023-07-01", "2024-07-01", monthsNet, true, "+quarter 07-01..01-01 +quarter 01-01..07-01"},
		{"2023-06-14", "2024-06-14", monthsNet, true,
			"+quarter 07-01..01-01 +dekad 06-21..07-01 +day 06-14..06-21 +quarter 01-01..04-01 +month 04-01..06-01 +dekad 06-01..06-11 +day 06-11..06-14"},
		{"2023-03-05", "", monthsNet, true, "+year 01-01..… -month 01-01..03-01 -day 03-01..03-05"},
		{"2024-02-03", "2024-02-26", monthsNet, true, "+month 02-01..03-01 -day 02-01..02-03 -day 02-26..03-01"},
		{"2024-02-11", "2024-02-21", monthsExact, true, "+dekad 02-11..02-21"},
	}
	for _, c := range cases {
		var w window
		if c.from != "" {
			w.from, w.hasFrom = d(c.from), true
		}
		if c.to != "" {
			w.to, w.hasTo = d(c.to), true
		}
		grains := []rollup.Grain{rollup.GrainDay, rollup.GrainMonth}
		if c.years {
			grains = rollup.Pick(rollup.Messages, rollup.DimIP).ReadGrains()
		}
		if got := planWindow(w, c.tiers, grains).String(); got != c.want {
			t.Errorf("%s..%s (%d, years %v): %s, want %s", c.from, c.to, c.tiers, c.years, got, c.want)
		}
	}
}
