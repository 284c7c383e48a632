package analytics_test

import (
	"bytes"
	"cmp"
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// The brute force answers every endpoint from the raw reports and records, following the
// definitions in the package documentation directly: no rollup table, no SQL aggregate. It
// shares with the rollups only the definitions that have tests of their own (the day
// spreading of rollup.Span, and rollup.PublishedPolicy.Matched).

type rawReport struct {
	store.Report
	recs []store.Record
}

func loadRaw(t testing.TB, st *store.Store) []*rawReport {
	t.Helper()
	ctx := context.Background()
	var reps []store.Report
	if err := st.DB().WithContext(ctx).Order("id").Find(&reps).Error; err != nil {
		t.Fatal(err)
	}
	var recs []store.Record
	if err := st.DB().WithContext(ctx).Order("id").Find(&recs).Error; err != nil {
		t.Fatal(err)
	}
	byID := map[int64]*rawReport{}
	out := make([]*rawReport, len(reps))
	for i := range reps {
		out[i] = &rawReport{Report: reps[i]}
		byID[reps[i].ID] = out[i]
	}
	for _, r := range recs {
		byID[r.ReportID].recs = append(byID[r.ReportID].recs, r)
	}
	return out
}

// query is a parsed parameter set, read independently of the package's parser.
type query struct {
	from, to       int32
	hasFrom, hasTo bool
	domain, org    string
	ipLo, ipHi     []byte
	dkim, spf      string
	disposition    string
}

func dayNum(t time.Time) int32 { return int32(t.Unix() / 86400) }

// firstDayAtOrAfter is the first whole UTC day starting at or after t.
func firstDayAtOrAfter(t time.Time) int32 {
	d := dayNum(t)
	if time.Unix(int64(d)*86400, 0).Before(t) {
		d++
	}
	return d
}

func parseQuery(t testing.TB, v url.Values, now time.Time) query {
	var q query
	if s := v.Get("days"); s != "" {
		n, _ := strconv.Atoi(s)
		q.from, q.hasFrom = firstDayAtOrAfter(now.AddDate(0, 0, -n)), true
	}
	if s := v.Get("start"); s != "" {
		if d, err := time.Parse(time.DateOnly, s); err == nil {
			q.from = dayNum(d)
		} else {
			ts, _ := time.Parse(time.RFC3339, s)
			q.from = firstDayAtOrAfter(ts)
		}
		q.hasFrom = true
	}
	if s := v.Get("end"); s != "" {
		if d, err := time.Parse(time.DateOnly, s); err == nil {
			q.to = dayNum(d) + 1
		} else {
			ts, _ := time.Parse(time.RFC3339, s)
			q.to = firstDayAtOrAfter(ts)
		}
		q.hasTo = true
	}
	q.domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(v.Get("domain")), "."))
	q.org = strings.ToLower(strings.TrimSpace(v.Get("org_name")))
	if s := v.Get("source_ip"); s != "" {
		b := netip.MustParseAddr(s).Unmap().As16()
		q.ipLo, q.ipHi = b[:], b[:]
	}
	if s := v.Get("source_ip_range"); s != "" {
		p := netip.MustParsePrefix(s)
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		lo, hi := store.IPRange(p)
		if q.ipLo != nil {
			// Both given: the address must lie in the range.
			if bytes.Compare(q.ipLo, lo) < 0 || bytes.Compare(q.ipLo, hi) > 0 {
				q.ipLo, q.ipHi = []byte{1}, []byte{0}
			}
		} else {
			q.ipLo, q.ipHi = lo, hi
		}
	}
	q.dkim, q.spf, q.disposition = v.Get("dkim_result"), v.Get("spf_result"), v.Get("disposition")
	return q
}

func (q query) inWindow(d int32) bool {
	return (!q.hasFrom || d >= q.from) && (!q.hasTo || d < q.to)
}

func (q query) reportOK(r *rawReport) bool {
	return (q.domain == "" || r.Domain == q.domain) && (q.org == "" || r.OrgKey == q.org)
}

func (q query) recordOK(r store.Record) bool {
	if q.ipLo != nil && (bytes.Compare(r.IP, q.ipLo) < 0 || bytes.Compare(r.IP, q.ipHi) > 0) {
		return false
	}
	return (q.dkim == "" || r.DKIM == q.dkim) && (q.spf == "" || r.SPF == q.spf) && (q.disposition == "" || r.Disposition == q.disposition)
}

func (q query) hasRecordFilter() bool {
	return q.ipLo != nil || q.dkim != "" || q.spf != "" || q.disposition != ""
}

// piece is a day's share of one cell (a report's messages from one source with one set of
// results and one compliance verdict).
type piece struct {
	day              int32
	rep              *rawReport
	ip               [16]byte
	disposition      string
	dkimPass, spfPas bool
	matched          bool
	n                int64
}

func (p piece) pass() bool { return p.dkimPass || p.spfPas }

// pieces spreads every matching record's messages over its report's days and keeps the days
// lo ≤ day < hi of the window (lookback widens it for the failure trend).
func pieces(reps []*rawReport, q query, lookback int32) []piece {
	var out []piece
	for _, r := range reps {
		if !q.reportOK(r) {
			continue
		}
		pol := rollup.PublishedPolicy{Domain: r.Domain, P: r.PolicyP, SP: r.PolicySP, Pct: r.PolicyPct, Testing: r.PolicyTesting}
		type cellKey struct {
			ip        [16]byte
			disp      string
			dkim, spf string
			matched   bool
		}
		cells := map[cellKey]int64{}
		var order []cellKey
		for _, rec := range r.recs {
			if !q.recordOK(rec) || rec.Count <= 0 {
				continue
			}
			k := cellKey{ip: [16]byte(rec.IP), disp: normDisp(rec.Disposition), dkim: normResult(rec.DKIM), spf: normResult(rec.SPF),
				matched: pol.Matched(rec.HeaderFrom, rollup.Outcome(rec.Disposition, rec.DKIM, rec.SPF))}
			if _, ok := cells[k]; !ok {
				order = append(order, k)
			}
			cells[k] += rec.Count
		}
		span := rollup.NewSpan(r.DateBegin, r.DateEnd)
		for _, k := range order {
			parts := span.Split(cells[k], rollup.TieKey(r.ID, k.ip, rollup.Outcome(k.disp, k.dkim, k.spf), k.matched), nil)
			for i, n := range parts {
				day := span.First + int32(i)
				lq := q
				if lq.hasFrom {
					lq.from -= lookback
				}
				if n == 0 || !lq.inWindow(day) {
					continue
				}
				out = append(out, piece{day: day, rep: r, ip: k.ip, disposition: k.disp, dkimPass: k.dkim == "pass", spfPas: k.spf == "pass",
					matched: k.matched, n: n})
			}
		}
	}
	return out
}

// normDisp and normResult fold values outside the schema into "other", as the package does.
func normDisp(s string) string {
	switch s {
	case "none", "quarantine", "reject", "pass":
		return s
	}
	return "other"
}

func normResult(s string) string {
	if s == "pass" || s == "fail" {
		return s
	}
	return "other"
}

func rateOf(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

func day(d int32) string { return time.Unix(int64(d)*86400, 0).UTC().Format(time.DateOnly) }

func windowOf(q query) analytics.Window {
	var w analytics.Window
	if q.hasFrom {
		s := day(q.from)
		w.Start = &s
	}
	if q.hasTo {
		s := day(q.to - 1)
		w.End = &s
	}
	return w
}

func addDisp(d *analytics.Dispositions, disp string, n int64) {
	switch disp {
	case "none":
		d.None += n
	case "quarantine":
		d.Quarantine += n
	case "reject":
		d.Reject += n
	case "pass":
		d.Pass += n
	default:
		d.Other += n
	}
}

func bruteSummary(reps []*rawReport, ps []piece, q query) analytics.Summary {
	out := analytics.Summary{Window: windowOf(q)}
	srcs := map[[16]byte]bool{}
	for _, p := range ps {
		out.TotalMessages += p.n
		if p.pass() {
			out.DMARCPassMessages += p.n
		}
		addDisp(&out.Dispositions, p.disposition, p.n)
		srcs[p.ip] = true
	}
	out.DMARCFailMessages = out.TotalMessages - out.DMARCPassMessages
	out.DMARCPassRate, out.DMARCFailRate = rateOf(out.DMARCPassMessages, out.TotalMessages), rateOf(out.DMARCFailMessages, out.TotalMessages)
	out.Sources = int64(len(srcs))
	doms, orgs := map[string]bool{}, map[string]bool{}
	for _, r := range reps {
		if !q.reportOK(r) || !q.inWindow(dayNum(r.DateBegin)) {
			continue
		}
		if q.hasRecordFilter() && !slices.ContainsFunc(r.recs, q.recordOK) {
			continue
		}
		out.TotalReports++
		doms[r.Domain], orgs[r.OrgKey] = true, true
	}
	out.Domains, out.Reporters = int64(len(doms)), int64(len(orgs))
	return out
}

func bruteAlignment(ps []piece, q query) analytics.Alignment {
	out := analytics.Alignment{Window: windowOf(q)}
	for _, p := range ps {
		out.Messages += p.n
		if p.dkimPass {
			out.DKIM.Pass += p.n
		} else {
			out.DKIM.Fail += p.n
		}
		if p.spfPas {
			out.SPF.Pass += p.n
		} else {
			out.SPF.Fail += p.n
		}
	}
	out.DKIM.PassRate, out.SPF.PassRate = rateOf(out.DKIM.Pass, out.Messages), rateOf(out.SPF.Pass, out.Messages)
	return out
}

func bruteBreakdown(ps []piece, q query) analytics.Breakdown {
	out := analytics.Breakdown{Window: windowOf(q)}
	for _, p := range ps {
		out.Messages += p.n
		switch {
		case p.dkimPass && p.spfPas:
			out.Both.Messages += p.n
		case p.dkimPass:
			out.DKIMOnly.Messages += p.n
		case p.spfPas:
			out.SPFOnly.Messages += p.n
		default:
			out.Neither.Messages += p.n
		}
	}
	for _, s := range []*analytics.Share{&out.Both, &out.DKIMOnly, &out.SPFOnly, &out.Neither} {
		s.Rate = rateOf(s.Messages, out.Messages)
	}
	return out
}

// bucket is the first day of d's bucket.
func bucket(interval string, d int32) int32 {
	t := time.Unix(int64(d)*86400, 0).UTC()
	switch interval {
	case "week":
		wd := (int(t.Weekday()) + 6) % 7 // Monday 0
		return d - int32(wd)
	case "month":
		return dayNum(time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC))
	}
	return d
}

func bucketEnd(interval string, b int32) int32 {
	t := time.Unix(int64(b)*86400, 0).UTC()
	switch interval {
	case "week":
		return b + 6
	case "month":
		return dayNum(t.AddDate(0, 1, 0)) - 1
	}
	return b
}

// seriesDays are the first and last day of a series: the window, an open start from the
// first data, an open end through today or the last data.
func seriesDays(q query, ps []piece, today int32) (int32, int32, bool) {
	first, last := q.from, q.to-1
	if !q.hasFrom {
		if len(ps) == 0 {
			return 0, 0, false
		}
		first = ps[0].day
		for _, p := range ps {
			first = min(first, p.day)
		}
	}
	// The series never runs past today or the last data, whichever is later, even when the
	// window's end is later.
	last = today
	for _, p := range ps {
		last = max(last, p.day)
	}
	if q.hasTo {
		last = min(last, q.to-1)
	}
	return first, last, first <= last
}

func bruteTimeline(ps []piece, q query, interval string, today int32) analytics.Timeline {
	out := analytics.Timeline{Interval: interval, RequestedInterval: interval, Window: windowOf(q), Points: []analytics.Point{}}
	first, last, ok := seriesDays(q, ps, today)
	if !ok {
		return out
	}
	idx := map[int32]int{}
	for b := bucket(interval, first); b <= last; b = bucketEnd(interval, b) + 1 {
		start, end := b, bucketEnd(interval, b)
		if q.hasFrom {
			start = max(start, first)
		}
		if q.hasTo {
			end = min(end, last)
		}
		idx[b] = len(out.Points)
		out.Points = append(out.Points, analytics.Point{Start: day(start), End: day(end)})
	}
	for _, p := range ps {
		pt := &out.Points[idx[bucket(interval, p.day)]]
		pt.Messages += p.n
		if p.pass() {
			pt.DMARCPassMessages += p.n
		}
		addDisp(&pt.Dispositions, p.disposition, p.n)
	}
	for i := range out.Points {
		pt := &out.Points[i]
		pt.DMARCFailMessages = pt.Messages - pt.DMARCPassMessages
		pt.DMARCPassRate = rateOf(pt.DMARCPassMessages, pt.Messages)
	}
	return out
}

func bruteTrend(all []piece, q query, today int32) analytics.FailureTrend {
	out := analytics.FailureTrend{Window: windowOf(q), Points: []analytics.TrendPoint{}}
	var inWin []piece
	msgs, fails := map[int32]int64{}, map[int32]int64{}
	for _, p := range all {
		msgs[p.day] += p.n
		if !p.pass() {
			fails[p.day] += p.n
		}
		if q.inWindow(p.day) {
			inWin = append(inWin, p)
		}
	}
	first, last, ok := seriesDays(q, inWin, today)
	if !ok {
		return out
	}
	for d := first; d <= last; d++ {
		var m7, f7 int64
		for k := d - 6; k <= d; k++ {
			m7, f7 = m7+msgs[k], f7+fails[k]
		}
		out.Points = append(out.Points, analytics.TrendPoint{Date: day(d), Messages: msgs[d], DMARCFailMessages: fails[d],
			FailureRate: rateOf(fails[d], msgs[d]), MovingAverage7d: rateOf(f7, m7)})
	}
	return out
}

func bruteSources(ps []piece, page, limit int) apiparams.List[analytics.Source] {
	type acc struct {
		ip                [16]byte
		msgs, pas, dk, sp int64
		first, last       int32
		orgs              map[string]bool
	}
	by := map[[16]byte]*acc{}
	for _, p := range ps {
		a := by[p.ip]
		if a == nil {
			a = &acc{ip: p.ip, first: p.day, last: p.day, orgs: map[string]bool{}}
			by[p.ip] = a
		}
		a.msgs += p.n
		if p.pass() {
			a.pas += p.n
		}
		if p.dkimPass {
			a.dk += p.n
		}
		if p.spfPas {
			a.sp += p.n
		}
		a.first, a.last = min(a.first, p.day), max(a.last, p.day)
		a.orgs[p.rep.OrgKey] = true
	}
	var all []*acc
	for _, a := range by {
		all = append(all, a)
	}
	slices.SortFunc(all, func(x, y *acc) int { return cmp.Or(cmp.Compare(y.msgs, x.msgs), bytes.Compare(x.ip[:], y.ip[:])) })
	out := apiparams.List[analytics.Source]{Items: []analytics.Source{}, Total: int64(len(all)), Page: page, PageSize: limit}
	for i := (page - 1) * limit; i < len(all) && i < page*limit; i++ {
		a := all[i]
		out.Items = append(out.Items, analytics.Source{SourceIP: netip.AddrFrom16(a.ip).Unmap().String(), Messages: a.msgs,
			DMARCPassMessages: a.pas, DMARCFailMessages: a.msgs - a.pas, DMARCPassRate: rateOf(a.pas, a.msgs), DKIMPassMessages: a.dk,
			SPFPassMessages: a.sp, Reporters: int64(len(a.orgs)), FirstSeen: day(a.first), LastSeen: day(a.last)})
	}
	return out
}

func bruteOrgs(ps []piece, page, limit int) apiparams.List[analytics.Organization] {
	type acc struct {
		key       string
		msgs, pas int64
	}
	by := map[string]*acc{}
	for _, p := range ps {
		a := by[p.rep.OrgKey]
		if a == nil {
			a = &acc{key: p.rep.OrgKey}
			by[p.rep.OrgKey] = a
		}
		a.msgs += p.n
		if p.pass() {
			a.pas += p.n
		}
	}
	var all []*acc
	for _, a := range by {
		all = append(all, a)
	}
	slices.SortFunc(all, func(x, y *acc) int { return cmp.Or(cmp.Compare(y.msgs, x.msgs), strings.Compare(x.key, y.key)) })
	out := apiparams.List[analytics.Organization]{Items: []analytics.Organization{}, Total: int64(len(all)), Page: page, PageSize: limit}
	for i := (page - 1) * limit; i < len(all) && i < page*limit; i++ {
		a := all[i]
		// The display name is any spelling of the reporter; the API's is compared by key.
		out.Items = append(out.Items, analytics.Organization{OrgName: a.key, Messages: a.msgs, DMARCPassMessages: a.pas,
			DMARCFailMessages: a.msgs - a.pas, DMARCPassRate: rateOf(a.pas, a.msgs)})
	}
	return out
}

func brutePolicy(ps []piece, page, size int) apiparams.List[analytics.PolicyDomain] {
	by := map[string]*analytics.PolicyDomain{}
	shares := map[string]map[string]*analytics.PolicyShare{}
	for _, p := range ps {
		d := by[p.rep.Domain]
		if d == nil {
			d = &analytics.PolicyDomain{Domain: p.rep.Domain, Published: []analytics.PolicyShare{}}
			by[p.rep.Domain], shares[p.rep.Domain] = d, map[string]*analytics.PolicyShare{}
		}
		pol := p.rep.PolicyP
		if pol != "none" && pol != "quarantine" && pol != "reject" {
			pol = "other"
		}
		s := shares[p.rep.Domain][pol]
		if s == nil {
			s = &analytics.PolicyShare{Policy: pol}
			shares[p.rep.Domain][pol] = s
		}
		d.Messages += p.n
		s.Messages += p.n
		if p.matched {
			d.MatchedMessages += p.n
			s.MatchedMessages += p.n
		}
	}
	var all []analytics.PolicyDomain
	for name, d := range by {
		d.UnmatchedMessages = d.Messages - d.MatchedMessages
		d.ComplianceRate = rateOf(d.MatchedMessages, d.Messages)
		for _, pol := range []string{"none", "quarantine", "reject", "other"} {
			if s := shares[name][pol]; s != nil {
				d.Published = append(d.Published, *s)
			}
		}
		all = append(all, *d)
	}
	slices.SortFunc(all, func(x, y analytics.PolicyDomain) int { return strings.Compare(x.Domain, y.Domain) })
	out := apiparams.List[analytics.PolicyDomain]{Items: []analytics.PolicyDomain{}, Total: int64(len(all)), Page: page, PageSize: size}
	for i := (page - 1) * size; i < len(all) && i < page*size; i++ {
		out.Items = append(out.Items, all[i])
	}
	return out
}
