package analytics

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
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
	// enrich is the condition over sender_sources ss of the sender, country and asn
	// filters ("" without them), enrichArgs its arguments.
	enrich     string
	enrichArgs []any
	// none: the filter names a domain or reporter without any rollup: nothing matches.
	none bool
	f    store.Filter
}

// dims are the dimensions the filter needs from a rollup table.
func (s scope) dims() rollup.Dim {
	var d rollup.Dim
	if s.outcomes != nil {
		d |= rollup.DimOutcome
	}
	if s.domainID != 0 {
		d |= rollup.DimDomain
	}
	if s.orgID != 0 {
		d |= rollup.DimOrg
	}
	if s.ipLo != nil || s.enrich != "" {
		d |= rollup.DimIP
	}
	return d
}

// hasIP: the scope selects sources (by address or by what enrichment found).
func (s scope) hasIP() bool { return s.ipLo != nil || s.enrich != "" }

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
	s.enrich, s.enrichArgs = f.EnrichCondition()
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
	asked := map[int32]bool{}
	e.mu.RLock()
	for _, id := range ids {
		if n, ok := e.names[id]; ok {
			out[id] = n
		} else if !asked[id] {
			// Callers pass one id per row (SourceGroups: tens of thousands): asked once each,
			// or PostgreSQL refuses a statement of more than 65,535 parameters.
			asked[id] = true
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
	asked := map[int32]bool{}
	e.mu.RLock()
	for _, id := range ids {
		if n, ok := e.orgName[id]; ok {
			out[id] = n
		} else if !asked[id] {
			asked[id] = true // as in domainNames
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

// tiering says how rows may cover a window with the tables of a family's grains (day, dekad,
// month, quarter, year).
type tiering int

const (
	// daysOnly reads the day table only (daily series).
	daysOnly tiering = iota
	// monthsExact reads whole periods inside the window from the coarsest tables that fit and
	// the days at its edges from the day table: every row lies inside the window, so
	// first_day/last_day are exact.
	monthsExact
	// monthsNet may also take a period (a year, a month, …) that sticks out of the window
	// whole and subtract the parts outside (their measure negated), when that reads fewer
	// rows. Only sums are exact: the caller adds the measure up and drops groups whose sum is
	// zero.
	monthsNet
)

// grainCost is what reading one period's rows of a grain costs, in days' rows: a dekad table
// holds about four days' worth of day rows, a month table about a week's, a quarter two
// weeks', a year about three weeks' (sources recur; measured on synthetic data, and the
// denser the data, the closer these come together). A window ending today subtracts periods after today, which are empty: cheaper than
// the plan assumes.
var grainCost = [...]int{rollup.GrainDay: 1, rollup.GrainDekad: 4, rollup.GrainMonth: 8, rollup.GrainQuarter: 16, rollup.GrainYear: 24}

// span is a range of periods [lo, hi), either end open.
type span struct {
	lo, hi       int32
	hasLo, hasHi bool
}

// part is one range of one grain's table, added or (neg) subtracted.
type part struct {
	grain rollup.Grain
	sp    span
	neg   bool
}

// plan is the parts a window is read from.
type plan struct {
	parts []part
	cost  int // estimated rows read, in days' rows (bounded parts only)
}

func (p *plan) join(o plan) {
	p.parts = append(p.parts, o.parts...)
	p.cost += o.cost
}

// planWindow cuts a window into ranges of the given grains' tables (finest first, day and
// month among them).
func planWindow(w window, t tiering, grains []rollup.Grain) plan {
	all := span{lo: w.from, hi: w.to, hasLo: w.hasFrom, hasHi: w.hasTo}
	if t == daysOnly {
		return plan{parts: []part{{grain: rollup.GrainDay, sp: all}}}
	}
	return cover(all, grains, false, t)
}

// cover plans the days of sp with tables of the grains (finest first), the coarsest one
// first: its whole periods inside sp from its table, the edges from finer grains or
// (monthsNet) an edge period whole less the days outside sp, when that is cheaper. neg
// negates every part.
func cover(sp span, grains []rollup.Grain, neg bool, t tiering) plan {
	if sp.hasLo && sp.hasHi && sp.lo >= sp.hi {
		return plan{}
	}
	g, finer := grains[len(grains)-1], grains[:len(grains)-1]
	if g == rollup.GrainDay {
		return plan{parts: []part{{grain: g, sp: sp, neg: neg}}, cost: int(sp.hi - sp.lo)}
	}
	bounded := func(lo, hi int32) span { return span{lo: lo, hi: hi, hasLo: true, hasHi: true} }
	if sp.hasLo && sp.hasHi && g.Start(sp.lo) == g.Start(sp.hi-1) {
		// Inside one period: finer rows, or the period less the days around sp.
		best := cover(sp, finer, neg, t)
		if ps, pn := g.Start(sp.lo), g.Next(sp.lo); t == monthsNet || (ps == sp.lo && pn == sp.hi) {
			whole := plan{parts: []part{{grain: g, sp: bounded(ps, pn), neg: neg}}, cost: grainCost[g]}
			whole.join(cover(bounded(ps, sp.lo), finer, !neg, t))
			whole.join(cover(bounded(sp.hi, pn), finer, !neg, t))
			if whole.cost < best.cost {
				best = whole
			}
		}
		return best
	}
	var p plan
	core := sp
	if sp.hasLo && g.Start(sp.lo) != sp.lo {
		ps, pn := g.Start(sp.lo), g.Next(sp.lo)
		edge := cover(bounded(sp.lo, pn), finer, neg, t)
		core.lo = pn
		if t == monthsNet {
			if net := cover(bounded(ps, sp.lo), finer, !neg, t); grainCost[g]+net.cost < edge.cost {
				edge, core.lo = net, ps
			}
		}
		p.join(edge)
	}
	if sp.hasHi && g.Start(sp.hi) != sp.hi {
		ps, pn := g.Start(sp.hi), g.Next(sp.hi)
		edge := cover(bounded(ps, sp.hi), finer, neg, t)
		core.hi = ps
		if t == monthsNet {
			if net := cover(bounded(sp.hi, pn), finer, !neg, t); grainCost[g]+net.cost < edge.cost {
				edge, core.hi = net, pn
			}
		}
		p.join(edge)
	}
	if !core.hasLo || !core.hasHi || core.lo < core.hi {
		p.parts = append([]part{{grain: g, sp: core, neg: neg}}, p.parts...)
		if core.hasLo && core.hasHi {
			for d := core.lo; d < core.hi; d = g.Next(d) {
				p.cost += grainCost[g]
			}
		}
	}
	return p
}

// isMeasure: columns summed (negated in subtracted rows).
func isMeasure(c string) bool { return c == "messages" || c == "reports" }

// rows writes a derived table "(SELECT cols FROM … UNION ALL …) AS t" with the family's rows
// for the scope's window, cut by planWindow. cols may name family columns, period (then only
// day and month rows: daily series group by day or month), and first_day/last_day (a day
// row's own day; not with monthsNet). ipIn, when set, keeps only those source ids.
func (e *engine) rows(q *sqlb, f *rollup.Family, s scope, cols []string, t tiering, ipIn []int32) {
	grains := f.ReadGrains()
	if slices.Contains(cols, "period") {
		grains = []rollup.Grain{rollup.GrainDay, rollup.GrainMonth}
	}
	p := planWindow(s.win, t, grains)
	q.w("(")
	for i, pt := range p.parts {
		if i > 0 {
			q.w(" UNION ALL ")
		}
		q.w("SELECT ")
		for j, c := range cols {
			if j > 0 {
				q.w(", ")
			}
			switch {
			case (c == "first_day" || c == "last_day") && pt.grain == rollup.GrainDay:
				q.w("period AS " + c)
			case pt.neg && isMeasure(c):
				q.w("-" + c + " AS " + c)
			default:
				q.w(c)
			}
		}
		q.w(" FROM " + f.ReadTable(pt.grain) + " WHERE 1=1")
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
	if s.enrich != "" {
		q.w(" AND ip_id IN (SELECT ss.ip_id FROM sender_sources ss WHERE ")
		enrichCond(q, s)
		q.w(")")
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

// enrichCond writes the scope's condition over sender_sources ss with its arguments.
func enrichCond(q *sqlb, s scope) {
	parts := strings.Split(s.enrich, "?")
	for i, p := range parts {
		q.w(p)
		if i < len(s.enrichArgs) {
			q.arg(s.enrichArgs[i])
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
	if e.dialect != store.Postgres {
		return scanAll(sqlDB.QueryContext(ctx, q.b.String(), q.args...))(scan)
	}
	// Questions read thousands of rollup rows, not millions: PostgreSQL's parallel plans for
	// the UNION ALL of a window's parts cost more in worker start-up (6-25 ms on 2 cores)
	// than they save, and with many clients the cores serve other requests. The setting holds
	// for this read-only transaction only, not for the connection.
	tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("analytics: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
		return fmt.Errorf("analytics: no parallel workers: %w", err)
	}
	if err := scanAll(tx.QueryContext(ctx, q.b.String(), q.args...))(scan); err != nil {
		return err
	}
	return tx.Commit()
}

// scanAll calls scan for every row of a query's result.
func scanAll(rows *sql.Rows, err error) func(scan func(*sql.Rows) error) error {
	return func(scan func(*sql.Rows) error) error {
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
