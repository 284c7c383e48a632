package analytics

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// window is a query's period in whole UTC days, [from, to), either end open. Rollups have a
// day grain, so a window is the days whose start lies in [Filter.Start, Filter.End): days=7
// at noon is the last six whole days and today; end=2024-01-31 includes that day.
type window struct {
	from, to       int32
	hasFrom, hasTo bool
}

// ceilDay is the first day starting at or after t.
func ceilDay(t time.Time) int32 {
	d := rollup.DayOf(t)
	if rollup.DayTime(d).Before(t) {
		d++
	}
	return d
}

func windowOf(f store.Filter) window {
	var w window
	if !f.Start.IsZero() {
		w.from, w.hasFrom = ceilDay(f.Start), true
	}
	if !f.End.IsZero() {
		w.to, w.hasTo = ceilDay(f.End), true
	}
	return w
}

func (w window) empty() bool { return w.hasFrom && w.hasTo && w.from >= w.to }

// scope is a filter resolved for the rollup tables.
type scope struct {
	win      window
	domainID int32  // 0: all domains
	orgID    int32  // 0: all reporters
	ipLo     []byte // an IP filter's bounds (16-byte form), nil without one
	ipHi     []byte
	// ipID is the one known address inside the IP filter; 0 when it holds several (the
	// filter then selects ids by address range).
	ipID     int32
	outcomes []int8 // nil: every outcome
	// none: the filter names a domain or reporter without any rollup: nothing matches.
	none bool
	f    store.Filter
}

// dims are the dimensions the filter needs from a rollup table.
func (s scope) dims() rollup.Dim {
	d := rollup.DimOutcome
	if s.domainID != 0 {
		d |= rollup.DimDomain
	}
	if s.orgID != 0 {
		d |= rollup.DimOrg
	}
	if s.ipLo != nil {
		d |= rollup.DimIP
	}
	return d
}

func (s scope) hasIP() bool { return s.ipLo != nil }

// engine runs the rollup queries.
type engine struct {
	db      *gorm.DB
	dialect store.Dialect

	mu      sync.RWMutex
	domains map[string]int32 // name → id; ids never change once committed
	orgs    map[string]int32 // org_key → id
	names   map[int32]string // domain id → name
	orgName map[int32][2]string
}

func newEngine(st *store.Store) *engine {
	return &engine{db: st.DB(), dialect: st.Dialect(), domains: map[string]int32{}, orgs: map[string]int32{},
		names: map[int32]string{}, orgName: map[int32][2]string{}}
}

// resolve turns a filter into a scope.
func (e *engine) resolve(ctx context.Context, f store.Filter) (scope, error) {
	s := scope{win: windowOf(f), f: f, outcomes: rollup.OutcomeFilter(f.DKIM, f.SPF, f.Disposition)}
	if s.win.empty() {
		s.none = true
	}
	var err error
	if f.Domain != "" {
		if s.domainID, err = e.dimID(ctx, e.domains, "rollup_domains", "name", f.Domain); err != nil {
			return s, err
		}
		s.none = s.none || s.domainID == 0
	}
	if f.OrgName != "" {
		key := strings.ToLower(strings.TrimSpace(f.OrgName))
		if s.orgID, err = e.dimID(ctx, e.orgs, "rollup_orgs", "org_key", key); err != nil {
			return s, err
		}
		s.none = s.none || s.orgID == 0
	}
	switch {
	case f.SourceIP.IsValid():
		b := f.SourceIP.Unmap().As16()
		s.ipLo, s.ipHi = b[:], b[:]
	case f.SourceRange.IsValid():
		s.ipLo, s.ipHi = store.IPRange(f.SourceRange)
	}
	if f.SourceIP.IsValid() && f.SourceRange.IsValid() && !f.SourceRange.Contains(f.SourceIP.Unmap()) {
		s.none = true
	}
	if s.ipLo != nil && !s.none {
		ids, err := e.ipIDs(ctx, s.ipLo, s.ipHi)
		if err != nil {
			return s, err
		}
		switch len(ids) {
		case 0:
			s.none = true
		case 1:
			s.ipID = ids[0]
		}
	}
	return s, nil
}

// ipIDs returns the ids of up to two known addresses in [lo, hi]: enough to tell none, one
// and several apart.
func (e *engine) ipIDs(ctx context.Context, lo, hi []byte) ([]int32, error) {
	q := e.newQuery().w("SELECT id FROM rollup_ips WHERE ip BETWEEN ").arg(lo).w(" AND ").arg(hi).w(" ORDER BY ip LIMIT 2")
	var ids []int32
	err := e.each(ctx, q, func(r *sql.Rows) error {
		var id int32
		err := r.Scan(&id)
		ids = append(ids, id)
		return err
	})
	return ids, err
}

// dimID looks a domain or org id up; 0 when it has no rollups yet. Only found ids are cached.
func (e *engine) dimID(ctx context.Context, cache map[string]int32, table, col, name string) (int32, error) {
	e.mu.RLock()
	id, ok := cache[name]
	e.mu.RUnlock()
	if ok {
		return id, nil
	}
	var ids []int32
	if err := e.db.WithContext(ctx).Raw(fmt.Sprintf("SELECT id FROM %s WHERE %s = ?", table, col), name).Scan(&ids).Error; err != nil {
		return 0, fmt.Errorf("analytics: look up %s: %w", table, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	e.mu.Lock()
	cache[name] = ids[0]
	e.mu.Unlock()
	return ids[0], nil
}

// domainNames and orgNames map ids back to names.
func (e *engine) domainNames(ctx context.Context, ids []int32) (map[int32]string, error) {
	out := map[int32]string{}
	var missing []int32
	e.mu.RLock()
	for _, id := range ids {
		if n, ok := e.names[id]; ok {
			out[id] = n
		} else {
			missing = append(missing, id)
		}
	}
	e.mu.RUnlock()
	if len(missing) > 0 {
		var rows []struct {
			ID   int32
			Name string
		}
		if err := e.db.WithContext(ctx).Raw("SELECT id, name FROM rollup_domains WHERE id IN ?", missing).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("analytics: domain names: %w", err)
		}
		e.mu.Lock()
		for _, r := range rows {
			out[r.ID], e.names[r.ID] = r.Name, r.Name
		}
		e.mu.Unlock()
	}
	return out, nil
}

// orgNames maps org ids to [org_key, org_name].
func (e *engine) orgNames(ctx context.Context, ids []int32) (map[int32][2]string, error) {
	out := map[int32][2]string{}
	var missing []int32
	e.mu.RLock()
	for _, id := range ids {
		if n, ok := e.orgName[id]; ok {
			out[id] = n
		} else {
			missing = append(missing, id)
		}
	}
	e.mu.RUnlock()
	if len(missing) > 0 {
		var rows []struct {
			ID      int32
			OrgKey  string
			OrgName string
		}
		if err := e.db.WithContext(ctx).Raw("SELECT id, org_key, org_name FROM rollup_orgs WHERE id IN ?", missing).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("analytics: org names: %w", err)
		}
		e.mu.Lock()
		for _, r := range rows {
			n := [2]string{r.OrgKey, r.OrgName}
			out[r.ID], e.orgName[r.ID] = n, n
		}
		e.mu.Unlock()
	}
	return out, nil
}

// sqlb accumulates SQL text and its arguments with the dialect's placeholders.
type sqlb struct {
	b    strings.Builder
	args []any
	pg   bool
}

func (q *sqlb) w(s string) *sqlb { q.b.WriteString(s); return q }

func (q *sqlb) arg(v any) *sqlb {
	q.args = append(q.args, v)
	if q.pg {
		q.b.WriteString("$" + strconv.Itoa(len(q.args)))
	} else {
		q.b.WriteByte('?')
	}
	return q
}

// tiering says how rows may cover a window with month and day tables.
type tiering int

const (
	// daysOnly reads the day table only (daily series).
	daysOnly tiering = iota
	// monthsExact reads whole months inside the window from the month table and the days at
	// its edges from the day table: every row lies inside the window, so first_day/last_day
	// are exact.
	monthsExact
	// monthsNet may also take a month that sticks out of the window whole and subtract the
	// days outside (their measure negated), when that reads fewer rows. Only sums are exact:
	// the caller adds the measure up and drops groups whose sum is zero.
	monthsNet
)

// monthCost is what reading one month's rows costs, in days' rows (a month table holds about
// a week's worth of day rows: sources recur).
const monthCost = 8

// span is a range of periods [lo, hi), either end open.
type span struct {
	lo, hi       int32
	hasLo, hasHi bool
}

// plan cuts a window into a month range plus day ranges to add and to subtract.
type plan struct {
	months   *span
	add, sub []span
}

func planWindow(w window, t tiering) plan {
	all := span{lo: w.from, hi: w.to, hasLo: w.hasFrom, hasHi: w.hasTo}
	if t == daysOnly {
		return plan{add: []span{all}}
	}
	var p plan
	m := span{lo: w.from, hi: w.to, hasLo: w.hasFrom, hasHi: w.hasTo}
	if w.hasFrom && w.hasTo && rollup.MonthOf(w.from) == rollup.MonthOf(w.to-1) {
		// Inside one month: its days, or the month less the days around the window.
		ms, me := rollup.MonthOf(w.from), rollup.NextMonth(w.from)
		if t == monthsNet && monthCost+(w.from-ms)+(me-w.to) < w.to-w.from {
			p.months = &span{lo: ms, hi: me, hasLo: true, hasHi: true}
			p.sub = nonEmpty(span{lo: ms, hi: w.from, hasLo: true, hasHi: true}, span{lo: w.to, hi: me, hasLo: true, hasHi: true})
			return p
		}
		return plan{add: []span{all}}
	}
	if w.hasFrom && rollup.MonthOf(w.from) != w.from {
		ms, next := rollup.MonthOf(w.from), rollup.NextMonth(w.from)
		if t == monthsNet && monthCost+(w.from-ms) < next-w.from {
			m.lo = ms
			p.sub = append(p.sub, span{lo: ms, hi: w.from, hasLo: true, hasHi: true})
		} else {
			m.lo = next
			p.add = append(p.add, span{lo: w.from, hi: next, hasLo: true, hasHi: true})
		}
	}
	if w.hasTo && rollup.MonthOf(w.to) != w.to {
		ms, next := rollup.MonthOf(w.to), rollup.NextMonth(w.to)
		if t == monthsNet && monthCost+(next-w.to) < w.to-ms {
			m.hi = next
			p.sub = append(p.sub, span{lo: w.to, hi: next, hasLo: true, hasHi: true})
		} else {
			m.hi = ms
			p.add = append(p.add, span{lo: ms, hi: w.to, hasLo: true, hasHi: true})
		}
	}
	if !m.hasLo || !m.hasHi || m.lo < m.hi {
		p.months = &m
	}
	return p
}

func nonEmpty(spans ...span) []span {
	var out []span
	for _, s := range spans {
		if s.lo < s.hi {
			out = append(out, s)
		}
	}
	return out
}

// isMeasure: columns summed (negated in subtracted rows).
func isMeasure(c string) bool { return c == "messages" || c == "reports" }

// rows writes a derived table "(SELECT cols FROM … UNION ALL …) AS t" with the family's rows
// for the scope's window, cut by planWindow. cols may name family columns, period, and
// first_day/last_day (a day row's own day; not with monthsNet). ipIn, when set, keeps only
// those source ids.
func (e *engine) rows(q *sqlb, f *rollup.Family, s scope, cols []string, t tiering, ipIn []int32) {
	p := planWindow(s.win, t)
	type part struct {
		table string
		month bool
		neg   bool
		sp    span
	}
	var parts []part
	if p.months != nil {
		parts = append(parts, part{table: f.Month(), month: true, sp: *p.months})
	}
	for _, sp := range p.add {
		parts = append(parts, part{table: f.Day(), sp: sp})
	}
	for _, sp := range p.sub {
		parts = append(parts, part{table: f.Day(), neg: true, sp: sp})
	}
	q.w("(")
	for i, pt := range parts {
		if i > 0 {
			q.w(" UNION ALL ")
		}
		q.w("SELECT ")
		for j, c := range cols {
			if j > 0 {
				q.w(", ")
			}
			switch {
			case (c == "first_day" || c == "last_day") && !pt.month:
				q.w("period AS " + c)
			case pt.neg && isMeasure(c):
				q.w("-" + c + " AS " + c)
			default:
				q.w(c)
			}
		}
		q.w(" FROM " + pt.table + " WHERE 1=1")
		if pt.sp.hasLo {
			q.w(" AND period >= ").arg(int64(pt.sp.lo))
		}
		if pt.sp.hasHi {
			q.w(" AND period < ").arg(int64(pt.sp.hi))
		}
		e.filters(q, f, s, ipIn)
	}
	q.w(") AS t")
}

// filters narrows one tier's rows by the scope's dimensions.
func (e *engine) filters(q *sqlb, f *rollup.Family, s scope, ipIn []int32) {
	if s.domainID != 0 {
		q.w(" AND domain_id = ").arg(int64(s.domainID))
	}
	if s.orgID != 0 {
		q.w(" AND org_id = ").arg(int64(s.orgID))
	}
	switch {
	case s.ipID != 0:
		q.w(" AND ip_id = ").arg(int64(s.ipID))
	case s.ipLo != nil:
		q.w(" AND ip_id IN (SELECT id FROM rollup_ips WHERE ip BETWEEN ").arg(s.ipLo).w(" AND ").arg(s.ipHi).w(")")
	}
	if len(ipIn) > 0 {
		q.w(" AND ip_id IN (" + idList(ipIn) + ")")
	}
	if s.outcomes != nil {
		if f.Kind == rollup.Reports {
			q.w(" AND (mask & " + strconv.FormatInt(rollup.Mask(s.outcomes), 10) + ") <> 0")
		} else {
			q.w(" AND outcome IN (" + codeList(s.outcomes) + ")")
		}
	}
}

func idList(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}

func codeList(codes []int8) string {
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = strconv.Itoa(int(c))
	}
	return strings.Join(parts, ",")
}

// caseSum is SUM(messages) over the rows whose outcome is in codes.
func caseSum(pred func(int8) bool) string {
	var codes []int8
	for o := int8(0); o < rollup.Outcomes; o++ {
		if pred(o) {
			codes = append(codes, o)
		}
	}
	return "COALESCE(SUM(CASE WHEN outcome IN (" + codeList(codes) + ") THEN messages ELSE 0 END), 0)"
}

func (e *engine) newQuery() *sqlb { return &sqlb{pg: e.dialect == store.Postgres} }

// each runs q and calls scan for every row.
func (e *engine) each(ctx context.Context, q *sqlb, scan func(*sql.Rows) error) error {
	sqlDB, err := e.db.DB()
	if err != nil {
		return err
	}
	rows, err := sqlDB.QueryContext(ctx, q.b.String(), q.args...)
	if err != nil {
		return fmt.Errorf("analytics: query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("analytics: scan: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("analytics: query: %w", err)
	}
	return nil
}

func ipString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return netip.AddrFrom16([16]byte(b)).Unmap().String()
}

// pick is the smallest family of kind k with the dimensions need plus those the scope filters on.
func pick(k rollup.Kind, s scope, need rollup.Dim) (*rollup.Family, error) {
	f := rollup.Pick(k, need|s.dims())
	if f == nil {
		return nil, fmt.Errorf("analytics: no rollup family has dimensions %b", need|s.dims())
	}
	return f, nil
}
