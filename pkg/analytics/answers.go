package analytics

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/rollup"
)

// The answers of the rollup endpoints. Counts are messages unless named otherwise; every rate
// is a fraction 0..1 next to the counts it divides, weighted by messages (DESIGN.md), and null
// when there is nothing to divide by. Days are RFC 3339 full dates (UTC).

// Window is the period an answer covers: whole UTC days, both ends inclusive, null when open.
type Window struct {
	Start *string `json:"start"`
	End   *string `json:"end"`
}

// Dispositions counts messages by the disposition receivers applied; other is anything
// outside the four values of RFC 7489 / RFC 9990.
type Dispositions struct {
	None       int64 `json:"none"`
	Quarantine int64 `json:"quarantine"`
	Reject     int64 `json:"reject"`
	Pass       int64 `json:"pass"`
	Other      int64 `json:"other"`
}

func (d *Dispositions) add(o int8, n int64) {
	switch rollup.OutcomeDisposition(o) {
	case rollup.DispNone:
		d.None += n
	case rollup.DispQuarantine:
		d.Quarantine += n
	case rollup.DispReject:
		d.Reject += n
	case rollup.DispPass:
		d.Pass += n
	default:
		d.Other += n
	}
}

// Summary is GET /api/rollup/summary. Report counts (total_reports, domains, reporters) count
// reports whose period begins in the window, like the reports list; message counts are the
// reports' messages spread over their days, in the window.
type Summary struct {
	Window            Window       `json:"window"`
	TotalReports      int64        `json:"total_reports"`
	TotalMessages     int64        `json:"total_messages"`
	DMARCPassMessages int64        `json:"dmarc_pass_messages"`
	DMARCFailMessages int64        `json:"dmarc_fail_messages"`
	DMARCPassRate     *float64     `json:"dmarc_pass_rate"`
	DMARCFailRate     *float64     `json:"dmarc_fail_rate"`
	Dispositions      Dispositions `json:"dispositions"`
	Domains           int64        `json:"domains"`
	Reporters         int64        `json:"reporters"`
	Sources           int64        `json:"sources"`
}

// PassFail is one mechanism's aligned (policy-evaluated) results.
type PassFail struct {
	Pass     int64    `json:"pass"`
	Fail     int64    `json:"fail"`
	PassRate *float64 `json:"pass_rate"`
}

// Alignment is GET /api/rollup/alignment. fail counts every message whose policy-evaluated
// result is not pass.
type Alignment struct {
	Window   Window   `json:"window"`
	Messages int64    `json:"messages"`
	DKIM     PassFail `json:"dkim"`
	SPF      PassFail `json:"spf"`
}

// Share is a part of the messages.
type Share struct {
	Messages int64    `json:"messages"`
	Rate     *float64 `json:"rate"`
}

// Breakdown is GET /api/rollup/alignment-breakdown.
type Breakdown struct {
	Window   Window `json:"window"`
	Messages int64  `json:"messages"`
	Both     Share  `json:"both"`
	DKIMOnly Share  `json:"dkim_only"`
	SPFOnly  Share  `json:"spf_only"`
	Neither  Share  `json:"neither"`
}

// Point is one bucket of GET /api/rollup/timeline: start and end are its first and last day
// inside the window.
type Point struct {
	Start             string       `json:"start"`
	End               string       `json:"end"`
	Messages          int64        `json:"messages"`
	DMARCPassMessages int64        `json:"dmarc_pass_messages"`
	DMARCFailMessages int64        `json:"dmarc_fail_messages"`
	DMARCPassRate     *float64     `json:"dmarc_pass_rate"`
	Dispositions      Dispositions `json:"dispositions"`
}

// Timeline is GET /api/rollup/timeline. Interval is the one the points use: the one asked
// for (RequestedInterval), or a coarser one when that would make more than maxPoints points.
type Timeline struct {
	Interval          string  `json:"interval"`
	RequestedInterval string  `json:"requested_interval"`
	Window            Window  `json:"window"`
	Points            []Point `json:"points"`
}

// TrendPoint is one day of GET /api/rollup/failure-trend. moving_average_7d is the failure
// rate of the seven days ending that day taken together (message-weighted), including days
// before the window's start.
type TrendPoint struct {
	Date              string   `json:"date"`
	Messages          int64    `json:"messages"`
	DMARCFailMessages int64    `json:"dmarc_fail_messages"`
	FailureRate       *float64 `json:"failure_rate"`
	MovingAverage7d   *float64 `json:"moving_average_7d"`
}

// FailureTrend is GET /api/rollup/failure-trend. Truncated says the series was cut to its
// last maxPoints days: without a start, the data reached further back than that.
type FailureTrend struct {
	Window    Window       `json:"window"`
	Truncated bool         `json:"truncated"`
	Points    []TrendPoint `json:"points"`
}

// Source is one item of GET /api/rollup/sources. reporters counts the reporters that saw the
// source's messages in the window; first_seen/last_seen are the first and last day it had
// messages in the window.
type Source struct {
	SourceIP          string   `json:"source_ip"`
	Messages          int64    `json:"messages"`
	DMARCPassMessages int64    `json:"dmarc_pass_messages"`
	DMARCFailMessages int64    `json:"dmarc_fail_messages"`
	DMARCPassRate     *float64 `json:"dmarc_pass_rate"`
	DKIMPassMessages  int64    `json:"dkim_pass_messages"`
	SPFPassMessages   int64    `json:"spf_pass_messages"`
	Reporters         int64    `json:"reporters"`
	FirstSeen         string   `json:"first_seen"`
	LastSeen          string   `json:"last_seen"`
	// Enrichment (Deps.Describe), null until the source is enriched.
	PTR        *string `json:"ptr"`
	BaseDomain *string `json:"base_domain"`
	Sender     *string `json:"sender"`
	SenderType *string `json:"sender_type"`
	ASN        *int64  `json:"asn"`
	ASOrg      *string `json:"as_org"`
	Country    *string `json:"country"`
}

// Organization is one item of GET /api/rollup/top-organizations.
type Organization struct {
	OrgName           string   `json:"org_name"`
	Messages          int64    `json:"messages"`
	DMARCPassMessages int64    `json:"dmarc_pass_messages"`
	DMARCFailMessages int64    `json:"dmarc_fail_messages"`
	DMARCPassRate     *float64 `json:"dmarc_pass_rate"`
}

// PolicyShare is a domain's messages under one published policy (p=).
type PolicyShare struct {
	Policy          string `json:"policy"`
	Messages        int64  `json:"messages"`
	MatchedMessages int64  `json:"matched_messages"`
}

// PolicyDomain is one item of GET /api/rollup/policy: messages whose disposition matched the
// published policy and those that did not (rollup.PublishedPolicy.Matched defines it).
type PolicyDomain struct {
	Domain            string        `json:"domain"`
	Messages          int64         `json:"messages"`
	MatchedMessages   int64         `json:"matched_messages"`
	UnmatchedMessages int64         `json:"unmatched_messages"`
	ComplianceRate    *float64      `json:"compliance_rate"`
	Published         []PolicyShare `json:"published"`
}

func rate(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

func dayString(d int32) string { return rollup.DayTime(d).Format("2006-01-02") }

func windowOut(w window) Window {
	var out Window
	if w.hasFrom {
		s := dayString(w.from)
		out.Start = &s
	}
	if w.hasTo {
		s := dayString(w.to - 1)
		out.End = &s
	}
	return out
}

// byOutcome sums the scope's messages per outcome code.
func (e *engine) byOutcome(ctx context.Context, s scope) ([rollup.Outcomes]int64, error) {
	var out [rollup.Outcomes]int64
	if s.none {
		return out, nil
	}
	f, err := pick(rollup.Messages, s, rollup.DimOutcome)
	if err != nil {
		return out, err
	}
	q := e.newQuery().w("SELECT outcome, SUM(messages) FROM ")
	e.rows(q, f, s, []string{"outcome", "messages"}, monthsNet, nil)
	q.w(" GROUP BY outcome")
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var o int8
		var n int64
		if err := r.Scan(&o, &n); err != nil {
			return err
		}
		if o >= 0 && o < rollup.Outcomes {
			out[o] += n
		}
		return nil
	})
	return out, err
}

func (e *engine) summary(ctx context.Context, s scope) (Summary, error) {
	out := Summary{Window: windowOut(s.win)}
	if s.none {
		return out, nil
	}
	by, err := e.byOutcome(ctx, s)
	if err != nil {
		return out, err
	}
	for o, n := range by {
		out.TotalMessages += n
		if rollup.DMARCPass(int8(o)) {
			out.DMARCPassMessages += n
		}
		out.Dispositions.add(int8(o), n)
	}
	out.DMARCFailMessages = out.TotalMessages - out.DMARCPassMessages
	out.DMARCPassRate = rate(out.DMARCPassMessages, out.TotalMessages)
	out.DMARCFailRate = rate(out.DMARCFailMessages, out.TotalMessages)
	if out.Sources, err = e.distinctSources(ctx, s); err != nil {
		return out, err
	}
	if s.hasIP() && s.ipID == 0 {
		// Several addresses: a report with records from two of them must count once, which
		// the per-source report rollups cannot tell.
		out.TotalReports, out.Domains, out.Reporters, err = e.rawReportCounts(ctx, s)
		return out, err
	}
	if out.TotalReports, out.Domains, err = e.reportCounts(ctx, s, rollup.DimDomain, "domain_id"); err != nil {
		return out, err
	}
	_, out.Reporters, err = e.reportCounts(ctx, s, rollup.DimOrg, "org_id")
	return out, err
}

func (e *engine) distinctSources(ctx context.Context, s scope) (int64, error) {
	f, err := pick(rollup.Messages, s, rollup.DimIP)
	if err != nil {
		return 0, err
	}
	q := e.newQuery().w("SELECT COUNT(*) FROM (SELECT ip_id FROM ")
	e.rows(q, f, s, []string{"ip_id", "messages"}, monthsNet, nil)
	q.w(" GROUP BY ip_id HAVING SUM(messages) > 0) AS x")
	var n int64
	err = e.each(ctx, q, func(r *sql.Rows) error { return r.Scan(&n) })
	return n, err
}

// reportCounts counts reports beginning in the window and the distinct values of col.
func (e *engine) reportCounts(ctx context.Context, s scope, dim rollup.Dim, col string) (reports, distinct int64, err error) {
	f, err := pick(rollup.Reports, s, dim)
	if err != nil {
		return 0, 0, err
	}
	q := e.newQuery().w("SELECT COALESCE(SUM(n), 0), COUNT(*) FROM (SELECT " + col + ", SUM(reports) AS n FROM ")
	e.rows(q, f, s, []string{col, "reports"}, monthsNet, nil)
	q.w(" GROUP BY " + col + " HAVING SUM(reports) > 0) AS x")
	err = e.each(ctx, q, func(r *sql.Rows) error { return r.Scan(&reports, &distinct) })
	return reports, distinct, err
}

// rawReportCounts answers the report counts of an IP-filtered summary from the records (the
// report rollups do not keep sources), through records_ip_idx.
func (e *engine) rawReportCounts(ctx context.Context, s scope) (reports, domains, reporters int64, err error) {
	q := e.newQuery().w(`SELECT COUNT(DISTINCT r.id), COUNT(DISTINCT r.domain), COUNT(DISTINCT r.org_key)
		FROM records rec JOIN reports r ON r.id = rec.report_id WHERE `)
	switch {
	case s.ipLo == nil:
		q.w("1=1")
	case string(s.ipLo) == string(s.ipHi):
		q.w("rec.ip = ").arg(s.ipLo)
	default:
		q.w("rec.ip BETWEEN ").arg(s.ipLo).w(" AND ").arg(s.ipHi)
	}
	if s.enrich != "" {
		q.w(" AND rec.ip IN (SELECT i.ip FROM sender_sources ss JOIN rollup_ips i ON i.id = ss.ip_id WHERE ")
		enrichCond(q, s)
		q.w(")")
	}
	f := s.f
	for _, c := range []struct{ col, v string }{{"rec.dkim", f.DKIM}, {"rec.spf", f.SPF}, {"rec.disposition", f.Disposition},
		{"r.domain", f.Domain}, {"r.org_key", strings.ToLower(strings.TrimSpace(f.OrgName))}} {
		if c.v != "" {
			q.w(" AND " + c.col + " = ").arg(c.v)
		}
	}
	if s.win.hasFrom {
		q.w(" AND r.date_begin >= ").arg(rollup.DayTime(s.win.from))
	}
	if s.win.hasTo {
		q.w(" AND r.date_begin < ").arg(rollup.DayTime(s.win.to))
	}
	err = e.each(ctx, q, func(r *sql.Rows) error { return r.Scan(&reports, &domains, &reporters) })
	return reports, domains, reporters, err
}

func (e *engine) alignment(ctx context.Context, s scope) (Alignment, error) {
	out := Alignment{Window: windowOut(s.win)}
	by, err := e.byOutcome(ctx, s)
	if err != nil {
		return out, err
	}
	for o, n := range by {
		out.Messages += n
		if rollup.DKIMPass(int8(o)) {
			out.DKIM.Pass += n
		}
		if rollup.SPFPass(int8(o)) {
			out.SPF.Pass += n
		}
	}
	out.DKIM.Fail, out.SPF.Fail = out.Messages-out.DKIM.Pass, out.Messages-out.SPF.Pass
	out.DKIM.PassRate, out.SPF.PassRate = rate(out.DKIM.Pass, out.Messages), rate(out.SPF.Pass, out.Messages)
	return out, nil
}

func (e *engine) breakdown(ctx context.Context, s scope) (Breakdown, error) {
	out := Breakdown{Window: windowOut(s.win)}
	by, err := e.byOutcome(ctx, s)
	if err != nil {
		return out, err
	}
	for o, n := range by {
		out.Messages += n
		dk, sp := rollup.DKIMPass(int8(o)), rollup.SPFPass(int8(o))
		switch {
		case dk && sp:
			out.Both.Messages += n
		case dk:
			out.DKIMOnly.Messages += n
		case sp:
			out.SPFOnly.Messages += n
		default:
			out.Neither.Messages += n
		}
	}
	for _, sh := range []*Share{&out.Both, &out.DKIMOnly, &out.SPFOnly, &out.Neither} {
		sh.Rate = rate(sh.Messages, out.Messages)
	}
	return out, nil
}

// daily sums messages per period and outcome. With dayOnly every period is a day; otherwise
// whole months come as month periods (their first day).
func (e *engine) daily(ctx context.Context, s scope, dayOnly bool) (map[int32]*[rollup.Outcomes]int64, error) {
	out := map[int32]*[rollup.Outcomes]int64{}
	if s.none {
		return out, nil
	}
	f, err := pick(rollup.Messages, s, rollup.DimOutcome)
	if err != nil {
		return nil, err
	}
	q := e.newQuery().w("SELECT period, outcome, SUM(messages) FROM ")
	tiers := monthsNet
	if dayOnly {
		tiers = daysOnly
	}
	e.rows(q, f, s, []string{"period", "outcome", "messages"}, tiers, nil)
	q.w(" GROUP BY period, outcome")
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var p int32
		var o int8
		var n int64
		if err := r.Scan(&p, &o, &n); err != nil {
			return err
		}
		if out[p] == nil {
			out[p] = new([rollup.Outcomes]int64)
		}
		if o >= 0 && o < rollup.Outcomes {
			out[p][o] += n
		}
		return nil
	})
	return out, err
}

// maxPoints bounds a series: as many daily points as the longest days=N window. It keeps
// every answer small (a point is a few hundred bytes) whatever start and end say.
const maxPoints = apiparams.MaxFilterDays

// seriesBounds is the first and last day of a series over the window: an open start begins at
// the first day with data; the series ends at the window's end, but never after today or the
// last day with data, whichever is later (an end of 9999-12-31 is an open end, not 2.9 million
// empty days).
func seriesBounds(w window, periods []int32, today int32) (first, last int32, ok bool) {
	slices.Sort(periods)
	switch {
	case w.hasFrom:
		first = w.from
	case len(periods) > 0:
		first = periods[0]
	default:
		return 0, 0, false
	}
	last = today
	if len(periods) > 0 {
		last = max(last, periods[len(periods)-1])
	}
	if w.hasTo {
		last = min(last, w.to-1)
	}
	return first, last, first <= last
}

// countBuckets is how many interval buckets hold the days first..last.
func countBuckets(interval string, first, last int32) int64 {
	switch interval {
	case "week":
		return int64(bucketOf("week", last)-bucketOf("week", first))/7 + 1
	case "month":
		ft, lt := rollup.DayTime(first), rollup.DayTime(last)
		return int64(lt.Year()-ft.Year())*12 + int64(lt.Month()-ft.Month()) + 1
	}
	return int64(last-first) + 1
}

// coarser is the next interval up, "" after month.
func coarser(interval string) string {
	switch interval {
	case "day":
		return "week"
	case "week":
		return "month"
	}
	return ""
}

// bucketOf is the first day of the interval bucket holding day d: the day, the Monday of its
// ISO week, or the first of its month.
func bucketOf(interval string, d int32) int32 {
	switch interval {
	case "week":
		// Day 0 (1970-01-01) was a Thursday: three days after a Monday.
		return d - int32((int64(d)+3)%7+7)%7
	case "month":
		return rollup.MonthOf(d)
	}
	return d
}

func nextBucket(interval string, b int32) int32 {
	switch interval {
	case "week":
		return b + 7
	case "month":
		return rollup.NextMonth(b)
	}
	return b + 1
}

func (e *engine) timeline(ctx context.Context, s scope, interval string, today int32) (Timeline, error) {
	out := Timeline{Interval: interval, RequestedInterval: interval, Window: windowOut(s.win), Points: []Point{}}
	data, err := e.daily(ctx, s, interval != "month")
	if err != nil {
		return out, err
	}
	periods := make([]int32, 0, len(data))
	for p := range data {
		periods = append(periods, p)
	}
	first, last, ok := seriesBounds(s.win, periods, today)
	if !ok {
		return out, nil
	}
	// A window too long for the interval is answered at a coarser one (said in interval):
	// ten years of days become weeks, a century of weeks months. Day or week data sums into
	// months as well as into their own buckets.
	for countBuckets(interval, first, last) > maxPoints {
		if interval = coarser(interval); interval == "" {
			return out, apiparams.BadParam("start", "the window holds more than %d months; give a start and end at most %d months apart", maxPoints, maxPoints)
		}
	}
	out.Interval = interval
	byBucket := map[int32]int{}
	for b := bucketOf(interval, first); b <= last; b = nextBucket(interval, b) {
		start, end := max(b, first), min(nextBucket(interval, b)-1, last)
		if !s.win.hasFrom {
			start = b
		}
		if !s.win.hasTo {
			end = nextBucket(interval, b) - 1
		}
		byBucket[b] = len(out.Points)
		out.Points = append(out.Points, Point{Start: dayString(start), End: dayString(end)})
	}
	for p, by := range data {
		i, ok := byBucket[bucketOf(interval, p)]
		if !ok {
			continue
		}
		pt := &out.Points[i]
		for o, n := range by {
			pt.Messages += n
			if rollup.DMARCPass(int8(o)) {
				pt.DMARCPassMessages += n
			}
			pt.Dispositions.add(int8(o), n)
		}
	}
	for i := range out.Points {
		pt := &out.Points[i]
		pt.DMARCFailMessages = pt.Messages - pt.DMARCPassMessages
		pt.DMARCPassRate = rate(pt.DMARCPassMessages, pt.Messages)
	}
	return out, nil
}

// trendLookback days before the window feed the first points' moving average.
const trendLookback = 6

func (e *engine) failureTrend(ctx context.Context, s scope, today int32) (FailureTrend, error) {
	out := FailureTrend{Window: windowOut(s.win), Points: []TrendPoint{}}
	wide := s
	if s.win.hasFrom {
		wide.win.from -= trendLookback
	}
	data, err := e.daily(ctx, wide, true)
	if err != nil {
		return out, err
	}
	var periods []int32
	for p := range data {
		if !s.win.hasFrom || p >= s.win.from {
			periods = append(periods, p)
		}
	}
	first, last, ok := seriesBounds(s.win, periods, today)
	if !ok {
		return out, nil
	}
	if n := int64(last-first) + 1; n > maxPoints {
		if s.win.hasFrom {
			return out, apiparams.BadParam("start", "the failure trend has a point per day, and %d days are more than %d: give a start and end closer together", n, maxPoints)
		}
		first, out.Truncated = last-maxPoints+1, true
	}
	msgs := func(d int32) (all, fail int64) {
		by := data[d]
		if by == nil {
			return 0, 0
		}
		for o, n := range by {
			all += n
			if !rollup.DMARCPass(int8(o)) {
				fail += n
			}
		}
		return all, fail
	}
	var winAll, winFail int64
	for d := first - trendLookback; d < first; d++ {
		a, f := msgs(d)
		winAll, winFail = winAll+a, winFail+f
	}
	for d := first; d <= last; d++ {
		a, f := msgs(d)
		winAll, winFail = winAll+a, winFail+f
		if d-first >= 0 {
			oa, of := msgs(d - trendLookback - 1)
			winAll, winFail = winAll-oa, winFail-of
		}
		out.Points = append(out.Points, TrendPoint{Date: dayString(d), Messages: a, DMARCFailMessages: f,
			FailureRate: rate(f, a), MovingAverage7d: rate(winFail, winAll)})
	}
	return out, nil
}

func (e *engine) sources(ctx context.Context, s scope, page, limit int) (apiparams.List[Source], error) {
	out := apiparams.List[Source]{Items: []Source{}, Page: page, PageSize: limit}
	if s.none {
		return out, nil
	}
	f, err := pick(rollup.Messages, s, rollup.DimIP)
	if err != nil {
		return out, err
	}
	// Rank by messages alone (one sum per row). Only the groups at or above the page's last
	// value are joined to their addresses, for the tie-break by address; the page's details
	// come after, for its few sources only.
	q := e.newQuery().w("WITH agg AS (SELECT ip_id, SUM(messages) AS m FROM ")
	e.rows(q, f, s, []string{"ip_id", "messages"}, monthsNet, nil)
	q.w(" GROUP BY ip_id HAVING SUM(messages) > 0) SELECT a.ip_id, i.ip, a.m, (SELECT COUNT(*) FROM agg) FROM agg a JOIN rollup_ips i ON i.id = a.ip_id").
		w(" WHERE a.m >= COALESCE((SELECT m FROM agg ORDER BY m DESC LIMIT 1 OFFSET ").arg(int64(page*limit - 1)).w("), 0)").
		w(" ORDER BY a.m DESC, i.ip LIMIT ").arg(int64(limit)).w(" OFFSET ").arg(int64((page - 1) * limit))
	var ids []int32
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var id int32
		var ip []byte
		var it Source
		if err := r.Scan(&id, &ip, &it.Messages, &out.Total); err != nil {
			return err
		}
		it.SourceIP = ipString(ip)
		out.Items = append(out.Items, it)
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return out, err
	}
	if len(out.Items) == 0 {
		if page > 1 {
			out.Total, err = e.distinctSources(ctx, s)
		}
		return out, err
	}
	fd, err := pick(rollup.Messages, s, rollup.DimIP|rollup.DimOutcome)
	if err != nil {
		return out, err
	}
	details, err := e.sourceDetails(ctx, fd, s, ids)
	if err != nil {
		return out, err
	}
	reporters, err := e.reportersOf(ctx, s, ids)
	if err != nil {
		return out, err
	}
	for i, id := range ids {
		it, d := &out.Items[i], details[id]
		if d == nil {
			continue
		}
		for o, n := range d.by {
			if rollup.DMARCPass(int8(o)) {
				it.DMARCPassMessages += n
			}
			if rollup.DKIMPass(int8(o)) {
				it.DKIMPassMessages += n
			}
			if rollup.SPFPass(int8(o)) {
				it.SPFPassMessages += n
			}
		}
		it.DMARCFailMessages = it.Messages - it.DMARCPassMessages
		it.DMARCPassRate = rate(it.DMARCPassMessages, it.Messages)
		it.Reporters = reporters[id]
		it.FirstSeen, it.LastSeen = dayString(d.first), dayString(d.last)
	}
	return out, nil
}

type sourceDetail struct {
	by          [rollup.Outcomes]int64
	first, last int32
}

// sourceDetails sums the messages of each of ids per outcome and finds their first and last
// day with messages, from month rows wholly inside the window and day rows at its edges (no
// subtraction, so first and last days are exact), for these few sources.
func (e *engine) sourceDetails(ctx context.Context, f *rollup.Family, s scope, ids []int32) (map[int32]*sourceDetail, error) {
	q := e.newQuery().w("SELECT ip_id, outcome, SUM(messages), MIN(first_day), MAX(last_day) FROM ")
	e.rows(q, f, s, []string{"ip_id", "outcome", "messages", "first_day", "last_day"}, monthsExact, ids)
	q.w(" GROUP BY ip_id, outcome")
	out := map[int32]*sourceDetail{}
	err := e.each(ctx, q, func(r *sql.Rows) error {
		var id, first, last int32
		var o int8
		var n int64
		if err := r.Scan(&id, &o, &n, &first, &last); err != nil {
			return err
		}
		d := out[id]
		if d == nil {
			d = &sourceDetail{first: first, last: last}
			out[id] = d
		}
		if o >= 0 && o < rollup.Outcomes {
			d.by[o] += n
		}
		d.first, d.last = min(d.first, first), max(d.last, last)
		return nil
	})
	return out, err
}

// reportersOf counts the distinct reporters that saw each of ids in the scope.
func (e *engine) reportersOf(ctx context.Context, s scope, ids []int32) (map[int32]int64, error) {
	f, err := pick(rollup.Messages, s, rollup.DimIP|rollup.DimOrg)
	if err != nil {
		return nil, err
	}
	q := e.newQuery().w("SELECT ip_id, COUNT(*) FROM (SELECT ip_id, org_id FROM ")
	e.rows(q, f, s, []string{"ip_id", "org_id", "messages"}, monthsNet, ids)
	q.w(" GROUP BY ip_id, org_id HAVING SUM(messages) > 0) AS x GROUP BY ip_id")
	out := map[int32]int64{}
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var id int32
		var n int64
		if err := r.Scan(&id, &n); err != nil {
			return err
		}
		out[id] = n
		return nil
	})
	return out, err
}

func (e *engine) topOrganizations(ctx context.Context, s scope, page, limit int) (apiparams.List[Organization], error) {
	out := apiparams.List[Organization]{Items: []Organization{}, Page: page, PageSize: limit}
	if s.none {
		return out, nil
	}
	f, err := pick(rollup.Messages, s, rollup.DimOrg|rollup.DimOutcome)
	if err != nil {
		return out, err
	}
	q := e.newQuery().w("SELECT org_id, SUM(messages), " + caseSum(rollup.DMARCPass) + " FROM ")
	e.rows(q, f, s, []string{"org_id", "outcome", "messages"}, monthsNet, nil)
	q.w(" GROUP BY org_id HAVING SUM(messages) > 0")
	type row struct {
		id        int32
		msgs, pas int64
	}
	var rows []row
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var x row
		if err := r.Scan(&x.id, &x.msgs, &x.pas); err != nil {
			return err
		}
		rows = append(rows, x)
		return nil
	})
	if err != nil {
		return out, err
	}
	ids := make([]int32, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	names, err := e.orgNames(ctx, ids)
	if err != nil {
		return out, err
	}
	// Reporters are few (tens to hundreds): ordering them here breaks ties by name.
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.msgs, a.msgs), strings.Compare(names[a.id][0], names[b.id][0]))
	})
	out.Total = int64(len(rows))
	for _, r := range pageOf(rows, page, limit) {
		out.Items = append(out.Items, Organization{OrgName: names[r.id][1], Messages: r.msgs, DMARCPassMessages: r.pas,
			DMARCFailMessages: r.msgs - r.pas, DMARCPassRate: rate(r.pas, r.msgs)})
	}
	return out, nil
}

func pageOf[T any](all []T, page, size int) []T {
	start := (page - 1) * size
	if start >= len(all) {
		return nil
	}
	return all[start:min(start+size, len(all))]
}

func (e *engine) policy(ctx context.Context, s scope, page, size int) (apiparams.List[PolicyDomain], error) {
	out := apiparams.List[PolicyDomain]{Items: []PolicyDomain{}, Page: page, PageSize: size}
	if s.none {
		return out, nil
	}
	f, err := pick(rollup.Messages, s, rollup.DimDomain|rollup.DimPolicy)
	if err != nil {
		return out, err
	}
	q := e.newQuery().w("SELECT domain_id, policy, matched, SUM(messages) FROM ")
	e.rows(q, f, s, []string{"domain_id", "policy", "matched", "messages"}, monthsNet, nil)
	q.w(" GROUP BY domain_id, policy, matched HAVING SUM(messages) > 0")
	doms := map[int32]*PolicyDomain{}
	shares := map[int32]map[int8]*PolicyShare{}
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var id int32
		var pol, matched int8
		var n int64
		if err := r.Scan(&id, &pol, &matched, &n); err != nil {
			return err
		}
		d := doms[id]
		if d == nil {
			d = &PolicyDomain{Published: []PolicyShare{}}
			doms[id], shares[id] = d, map[int8]*PolicyShare{}
		}
		sh := shares[id][pol]
		if sh == nil && pol >= 0 && int(pol) < len(rollup.Policies) {
			sh = &PolicyShare{Policy: rollup.Policies[pol]}
			shares[id][pol] = sh
		}
		d.Messages += n
		if sh != nil {
			sh.Messages += n
		}
		if matched == 1 {
			d.MatchedMessages += n
			if sh != nil {
				sh.MatchedMessages += n
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	ids := make([]int32, 0, len(doms))
	for id := range doms {
		ids = append(ids, id)
	}
	names, err := e.domainNames(ctx, ids)
	if err != nil {
		return out, err
	}
	all := make([]PolicyDomain, 0, len(doms))
	for id, d := range doms {
		d.Domain = names[id]
		d.UnmatchedMessages = d.Messages - d.MatchedMessages
		d.ComplianceRate = rate(d.MatchedMessages, d.Messages)
		for p := range int8(len(rollup.Policies)) {
			if sh := shares[id][p]; sh != nil {
				d.Published = append(d.Published, *sh)
			}
		}
		all = append(all, *d)
	}
	slices.SortFunc(all, func(a, b PolicyDomain) int { return strings.Compare(a.Domain, b.Domain) })
	out.Total = int64(len(all))
	out.Items = append(out.Items, pageOf(all, page, size)...)
	return out, nil
}
