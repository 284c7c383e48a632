package analytics

import (
	"fmt"
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
	m := "-"
	if p.months != nil {
		m = p.months.String()
	}
	return fmt.Sprintf("months %s add %v sub %v", m, p.add, p.sub)
}

// How windows are cut: whole months from month tables; edge days added, or the edge month
// taken whole less the days outside when that reads fewer rows; first/last-day questions never
// subtract.
func TestPlanWindow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to string // "" is open
		tiers    tiering
		want     string
	}{
		{"", "", monthsNet, "months …..… add [] sub []"},
		{"2024-03-01", "", monthsNet, "months 03-01..… add [] sub []"},
		{"2024-03-02", "", monthsNet, "months 03-01..… add [] sub [03-01..03-02]"},
		{"2024-03-02", "", monthsExact, "months 04-01..… add [03-02..04-01] sub []"},
		{"2024-03-20", "", monthsNet, "months 04-01..… add [03-20..04-01] sub []"},
		{"", "2024-06-29", monthsNet, "months …..07-01 add [] sub [06-29..07-01]"},
		{"", "2024-06-05", monthsNet, "months …..06-01 add [06-01..06-05] sub []"},
		{"2024-03-02", "2024-06-29", monthsNet, "months 03-01..07-01 add [] sub [03-01..03-02 06-29..07-01]"},
		{"2024-05-03", "2024-05-27", monthsNet, "months 05-01..06-01 add [] sub [05-01..05-03 05-27..06-01]"},
		{"2024-05-03", "2024-05-10", monthsNet, "months - add [05-03..05-10] sub []"},
		{"2024-05-03", "2024-05-27", monthsExact, "months - add [05-03..05-27] sub []"},
		{"2024-05-20", "2024-06-10", monthsNet, "months - add [05-20..06-01 06-01..06-10] sub []"},
		{"2024-05-03", "2024-06-10", daysOnly, "months - add [05-03..06-10] sub []"},
	}
	for _, c := range cases {
		var w window
		if c.from != "" {
			w.from, w.hasFrom = d(c.from), true
		}
		if c.to != "" {
			w.to, w.hasTo = d(c.to), true
		}
		if got := planWindow(w, c.tiers).String(); got != c.want {
			t.Errorf("%s..%s (%d): %s, want %s", c.from, c.to, c.tiers, got, c.want)
		}
	}
}
