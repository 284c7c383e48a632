package ml

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/pkg/advisor"
	"github.com/vigilhq/vigil/pkg/forecast"
	"github.com/vigilhq/vigil/pkg/rollup"
)

// Forecast bounds.
const (
	MinHistoryDays, MaxHistoryDays, DefaultHistoryDays = 14, 730, 91
	MinHorizon, MaxHorizon, DefaultHorizon             = 1, 60, 14
	season                                             = 7 // weekly
)

// DayValue is one day of a series.
type DayValue struct {
	Date  string   `json:"date"`
	Value *float64 `json:"value"` // null: no mail that day (a rate is undefined)
}

// DayPoint is one forecast day with its 95% prediction interval.
type DayPoint struct {
	Date  string  `json:"date"`
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// Series is the forecast of one measure.
type Series struct {
	Method  string           `json:"method"` // holt_winters_additive, simple_exponential_smoothing, insufficient_data
	Note    *string          `json:"note"`
	Params  *forecast.Params `json:"params"`
	Sigma   *float64         `json:"sigma"`
	History []DayValue       `json:"history"`
	Points  []DayPoint       `json:"points"`
}

// Forecast is GET /analytics/forecast.
type Forecast struct {
	Domain       string `json:"domain"`
	HistoryStart string `json:"history_start"`
	HistoryEnd   string `json:"history_end"` // yesterday: today is still arriving
	Horizon      int    `json:"horizon"`
	FailureRate  Series `json:"failure_rate"` // share of messages failing DMARC, clipped to [0, 1]
	Volume       Series `json:"volume"`       // messages per day, clipped at 0
}

type daySums struct {
	total, passed []int64
	seen          []bool
}

// dailySums reads a domain's messages and DMARC passes per day of [from, to].
func (s *Service) dailySums(ctx context.Context, domainID int32, from, to int32) (daySums, error) {
	n := int(to - from + 1)
	d := daySums{total: make([]int64, n), passed: make([]int64, n), seen: make([]bool, n)}
	var rows []struct {
		Period int32
		Total  int64
		Passed int64
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT period, SUM(messages) AS total, SUM(CASE WHEN outcome IN ? THEN messages ELSE 0 END) AS passed
		FROM rollup_domain_day WHERE domain_id = ? AND period >= ? AND period <= ? GROUP BY period`, passCodes(), domainID, from, to).Scan(&rows).Error; err != nil {
		return d, fmt.Errorf("ml: read daily counts: %w", err)
	}
	for _, r := range rows {
		i := int(r.Period - from)
		if i >= 0 && i < n {
			d.total[i], d.passed[i], d.seen[i] = r.Total, r.Passed, r.Total > 0
		}
	}
	return d, nil
}

func passCodes() []int {
	var out []int
	for o := 0; o < rollup.Outcomes; o++ {
		if rollup.DMARCPass(int8(o)) {
			out = append(out, o)
		}
	}
	return out
}

// Forecast projects a domain's daily DMARC failure rate and volume horizon days ahead from the
// history days ending yesterday.
func (s *Service) Forecast(ctx context.Context, domain string, history, horizon int) (Forecast, error) {
	id, err := s.domainID(ctx, domain)
	if err != nil {
		return Forecast{}, fmt.Errorf("domain %q: %w", domain, err)
	}
	to := rollup.DayOf(s.now()) - 1
	from := to - int32(history) + 1
	d, err := s.dailySums(ctx, id, from, to)
	if err != nil {
		return Forecast{}, err
	}
	return forecastOf(domain, from, to, horizon, d), nil
}

func forecastOf(domain string, from, to int32, horizon int, d daySums) Forecast {
	out := Forecast{Domain: strings.ToLower(domain), HistoryStart: dayStr(from), HistoryEnd: dayStr(to), Horizon: horizon}
	// Both series start at the first day with mail: the days before it are not zero volume
	// but days before the domain was reported on.
	first := -1
	for i, ok := range d.seen {
		if ok {
			first = i
			break
		}
	}
	vol, rate := []float64{}, []float64{}
	volHist, rateHist := []DayValue{}, []DayValue{}
	last := -1.0
	for i := range d.total {
		date := dayStr(from + int32(i))
		if first < 0 || i < first {
			volHist = append(volHist, DayValue{Date: date})
			rateHist = append(rateHist, DayValue{Date: date})
			continue
		}
		v := float64(d.total[i])
		vol = append(vol, v)
		volHist = append(volHist, DayValue{Date: date, Value: &v})
		if d.seen[i] {
			r := 1 - float64(d.passed[i])/float64(d.total[i])
			last = r
			rateHist = append(rateHist, DayValue{Date: date, Value: &r})
		} else {
			rateHist = append(rateHist, DayValue{Date: date})
		}
		// A day without mail has no rate: the last one carries forward for the model.
		rate = append(rate, last)
	}
	out.Volume = series(vol, volHist, to, horizon, 0, -1)
	out.FailureRate = series(rate, rateHist, to, horizon, 0, 1)
	return out
}

// series fits one measure, its forecasts and intervals clipped to [lo, hi] (hi < 0: no upper).
func series(y []float64, hist []DayValue, to int32, horizon int, lo, hi float64) Series {
	out := Series{History: hist, Points: []DayPoint{}}
	r, err := forecast.HoltWinters(y, season, horizon)
	if err != nil {
		out.Method = "insufficient_data"
		note := fmt.Sprintf("%d days with data: at least 3 are needed for a forecast", len(y))
		out.Note = &note
		return out
	}
	clip := func(v float64) float64 {
		v = max(v, lo)
		if hi >= 0 {
			v = min(v, hi)
		}
		return v
	}
	out.Method, out.Params, out.Sigma = r.Method, &r.Params, &r.Sigma
	if r.Note != "" {
		out.Note = &r.Note
	}
	for _, p := range r.Points {
		out.Points = append(out.Points, DayPoint{Date: dayStr(to + int32(p.Step)), Value: clip(p.Value), Lower: clip(p.Lower), Upper: clip(p.Upper)})
	}
	return out
}

func dayStr(d int32) string { return rollup.DayTime(d).Format(time.DateOnly) }

// ForecastAll forecasts every domain in parallel (the benchmark's job and a warm-up for a
// dashboard of all domains); the map is keyed by domain.
func (s *Service) ForecastAll(ctx context.Context, history, horizon int) (map[string]Forecast, error) {
	names, err := s.domainNames(ctx)
	if err != nil {
		return nil, err
	}
	to := rollup.DayOf(s.now()) - 1
	from := to - int32(history) + 1
	sums := map[int32]daySums{}
	for id := range names {
		sums[id] = daySums{total: make([]int64, history), passed: make([]int64, history), seen: make([]bool, history)}
	}
	rows, err := s.db.WithContext(ctx).Raw(`SELECT domain_id, period, SUM(messages), SUM(CASE WHEN outcome IN ? THEN messages ELSE 0 END)
		FROM rollup_domain_day WHERE period >= ? AND period <= ? GROUP BY domain_id, period`, passCodes(), from, to).Rows()
	if err != nil {
		return nil, fmt.Errorf("ml: read daily counts: %w", err)
	}
	for rows.Next() {
		var id, p int32
		var t, ps int64
		if err := rows.Scan(&id, &p, &t, &ps); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ml: read daily counts: %w", err)
		}
		if d, ok := sums[id]; ok && p >= from && p <= to {
			i := p - from
			d.total[i], d.passed[i], d.seen[i] = t, ps, t > 0
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	out := make(map[string]Forecast, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	ids := make(chan int32, len(names))
	for id := range names {
		ids <- id
	}
	close(ids)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				f := forecastOf(names[id], from, to, horizon, sums[id])
				mu.Lock()
				out[names[id]] = f
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// Advice bounds.
const MinAdviceDays, MaxAdviceDays, DefaultAdviceDays = 7, 365, 30

// Advice is GET /analytics/policy-advice: the advisor's answer with the window it read.
type Advice struct {
	advisor.Advice
	Days  int    `json:"days"`
	Start string `json:"start"`
	End   string `json:"end"`
}

// Advise reads a domain's senders over the last days UTC days and asks the advisor.
func (s *Service) Advise(ctx context.Context, domain string, days int) (Advice, error) {
	domain = strings.ToLower(domain)
	id, err := s.domainID(ctx, domain)
	if err != nil {
		return Advice{}, fmt.Errorf("domain %q: %w", domain, err)
	}
	to := rollup.DayOf(s.now())
	from := to - int32(days) + 1
	in := advisor.Input{Domain: domain}
	var pol []struct {
		PolicyP   string
		PolicyPct *int
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT policy_p, policy_pct FROM reports WHERE domain = ? ORDER BY date_begin DESC, id DESC LIMIT 1`, domain).Scan(&pol).Error; err != nil {
		return Advice{}, fmt.Errorf("ml: read published policy: %w", err)
	}
	if len(pol) > 0 {
		in.Policy = pol[0].PolicyP
		if pol[0].PolicyPct != nil {
			in.Pct = *pol[0].PolicyPct
		}
	}
	var rows []struct {
		IPID    int32
		Outcome int8
		N       int64
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT ip_id, outcome, SUM(messages) AS n FROM rollup_src_domain_day
		WHERE domain_id = ? AND period >= ? AND period <= ? GROUP BY ip_id, outcome`, id, from, to).Scan(&rows).Error; err != nil {
		return Advice{}, fmt.Errorf("ml: read sources: %w", err)
	}
	var nd []int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(DISTINCT period) FROM rollup_domain_day WHERE domain_id = ? AND period >= ? AND period <= ?`, id, from, to).Scan(&nd).Error; err != nil {
		return Advice{}, fmt.Errorf("ml: read days: %w", err)
	}
	if len(nd) > 0 {
		in.Days = int(nd[0])
	}
	accs := map[int32]*acc{}
	for _, r := range rows {
		a := accs[r.IPID]
		if a == nil {
			a = &acc{}
			accs[r.IPID] = a
		}
		a.msgs += r.N
		if rollup.DMARCPass(r.Outcome) {
			a.passed += r.N
		}
		if rollup.DKIMPass(r.Outcome) {
			a.dkim += r.N
		}
		if rollup.SPFPass(r.Outcome) {
			a.spf += r.N
		}
	}
	addrs, err := s.addresses(ctx, accs)
	if err != nil {
		return Advice{}, err
	}
	ips := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, a)
	}
	names := map[netip.Addr]string{}
	known := map[netip.Addr]bool{}
	if s.describe != nil && len(ips) > 0 {
		info, err := s.describe(ctx, ips)
		if err != nil {
			return Advice{}, fmt.Errorf("ml: describe sources: %w", err)
		}
		for ip, si := range info {
			switch {
			case si.Sender != nil && *si.Sender != "":
				names[ip], known[ip] = *si.Sender, true
			case si.BaseDomain != nil && *si.BaseDomain != "":
				names[ip] = *si.BaseDomain
			}
		}
	}
	// Named senders and PTR base domains gather their addresses; the rest stand alone.
	groups := map[string]*advisor.Source{}
	var order []string
	for id, a := range accs {
		ip, ok := addrs[id]
		if !ok {
			continue
		}
		name := names[ip]
		if name == "" {
			name = ip.String()
		}
		g := groups[name]
		if g == nil {
			g = &advisor.Source{Name: name, Known: known[ip]}
			groups[name] = g
			order = append(order, name)
		}
		g.IPs++
		g.Messages += a.msgs
		g.Passed += a.passed
		g.DKIMAligned += a.dkim
		g.SPFAligned += a.spf
	}
	for _, n := range order {
		in.Sources = append(in.Sources, *groups[n])
	}
	return Advice{Advice: advisor.Advise(in, advisor.Thresholds{}), Days: days, Start: dayStr(from), End: dayStr(to)}, nil
}
