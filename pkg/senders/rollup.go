package senders

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// The sender rollup (migration 18) holds, per policy domain, the sums of each sender group and
// each country by day, month and year, and the number of sources by the last day they sent. It
// is derived from the per-source rollups (rollup_src_domain_*, rollup_ip_domain_year) and
// sender_sources, one domain at a time, by Rebuild; domain 0 holds the countries of all
// domains (a source sending for two domains counts once there).
//
// Why derived rather than written by the report applier: the group of a source changes after
// its reports are rolled up (enrichment comes later; an admin maps a base domain to a
// sender), and moving a source's past between groups needs its per-source rows anyway.
//
// Exactness: each domain's rows record what they were built from (its report count in the
// rollups and its sender_versions version, read in the same snapshot). A question whose
// domains' numbers still match reads the rollup; any other domain is answered from the
// per-source rollups as before, so a stale rollup is slower, never wrong.

// RebuildStats counts what Rebuild did.
type RebuildStats struct {
	Synced  SyncStats `json:"synced"`
	Domains int       `json:"domains_rebuilt"`
	Fresh   int       `json:"domains_fresh"`
}

// fingerprint is what a domain's rollup rows are built from.
type fingerprint struct {
	reports int64
	version int64
}

type state struct {
	fp             fingerprint
	minDay, maxDay int32
}

// fingerprints reads every domain's current numbers (0: all domains) with q.
func fingerprints(ctx context.Context, q querier) (map[int32]fingerprint, error) {
	out := map[int32]fingerprint{}
	rows, err := q.QueryContext(ctx, "SELECT domain_id, SUM(reports) FROM rollup_rep_domain_total_year GROUP BY domain_id")
	if err != nil {
		return nil, fmt.Errorf("senders: report counts: %w", err)
	}
	var all int64
	for rows.Next() {
		var d int32
		var n int64
		if err := rows.Scan(&d, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("senders: report counts: %w", err)
		}
		out[d] = fingerprint{reports: n}
		all += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("senders: report counts: %w", err)
	}
	out[0] = fingerprint{reports: all}
	rows, err = q.QueryContext(ctx, "SELECT domain_id, version FROM sender_versions")
	if err != nil {
		return nil, fmt.Errorf("senders: versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d int32
		var v int64
		if err := rows.Scan(&d, &v); err != nil {
			return nil, fmt.Errorf("senders: versions: %w", err)
		}
		if fp, ok := out[d]; ok {
			fp.version = v
			out[d] = fp
		}
	}
	return out, rows.Err()
}

func (s *Service) states(ctx context.Context) (map[int32]state, error) {
	rows, err := s.sqlDB().QueryContext(ctx, "SELECT domain_id, reports, version, min_day, max_day FROM rollup_sender_state")
	if err != nil {
		return nil, fmt.Errorf("senders: rollup state: %w", err)
	}
	defer rows.Close()
	out := map[int32]state{}
	for rows.Next() {
		var d int32
		var st state
		if err := rows.Scan(&d, &st.fp.reports, &st.fp.version, &st.minDay, &st.maxDay); err != nil {
			return nil, fmt.Errorf("senders: rollup state: %w", err)
		}
		out[d] = st
	}
	return out, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// Rebuild derives the sender groups of sources enriched since the last run (Sync), then
// rebuilds the rollup rows of every domain whose numbers changed. It is the senders:rollup
// task. Runs of one process never overlap: a run asked for while one is under way leaves it
// to that one, which goes round again (runs keyed to successive minutes used to pile up on a
// busy worker, each rebuilding the same domains, and on SQLite they queued behind each other's
// transactions). Runs of several processes at once are harmless (a domain's rebuild is one
// transaction).
func (s *Service) Rebuild(ctx context.Context) (RebuildStats, error) {
	var out RebuildStats
	s.again.Store(true)
	for {
		if !s.running.TryLock() {
			return out, nil // the run under way sees again and goes round
		}
		var err error
		for err == nil && s.again.Swap(false) {
			// While reports keep arriving every round finds domains changed: a pause between
			// rounds lets ingestion and enrichment write (one SQLite writer) and gathers what
			// arrives into the next round.
			if wait := s.gap - time.Since(s.lastRound); s.gap > 0 && wait > 0 {
				select {
				case <-ctx.Done():
					err = ctx.Err()
					s.again.Store(true)
					continue
				case <-time.After(wait):
				}
			}
			var st RebuildStats
			st, err = s.rebuild(ctx)
			s.lastRound = time.Now()
			out.Synced.Sources += st.Synced.Sources
			out.Synced.Changed += st.Synced.Changed
			out.Domains += st.Domains
			out.Fresh = st.Fresh
		}
		s.running.Unlock()
		// A request that came between the last round and the unlock found the lock taken.
		if err != nil || !s.again.Load() {
			return out, err
		}
	}
}

// resyncEvery is how often a long rebuild derives the groups of newly enriched sources.
const resyncEvery = 5 * time.Second

func (s *Service) rebuild(ctx context.Context) (RebuildStats, error) {
	var out RebuildStats
	if err := s.checkCatalog(ctx); err != nil {
		return out, err
	}
	var err error
	if out.Synced, err = s.Sync(ctx); err != nil {
		return out, err
	}
	cur, err := fingerprints(ctx, s.sqlDB())
	if err != nil {
		return out, err
	}
	have, err := s.states(ctx)
	if err != nil {
		return out, err
	}
	lastSync := time.Now()
	for d, fp := range cur {
		if st, ok := have[d]; ok && st.fp == fp {
			out.Fresh++
			continue
		}
		// Rebuilding every domain takes long on a big database or a slow SQLite: sources
		// enriched meanwhile (before their rollup rows existed, so their batch could not group
		// them) are grouped every few seconds rather than at the next run.
		if time.Since(lastSync) > resyncEvery {
			st, err := s.Sync(ctx)
			out.Synced.Sources += st.Sources
			out.Synced.Changed += st.Changed
			if err != nil {
				return out, err
			}
			lastSync = time.Now()
		}
		if err := s.rebuildDomain(ctx, d); err != nil {
			return out, err
		}
		out.Domains++
	}
	return out, nil
}

// catalogRow is the sender_versions row holding a hash of the built-in catalog the sources were
// derived with: a release that changes senders.json derives every source again.
const catalogRow = -1

// checkCatalog marks every source to be derived again when senders.json changed since they
// were.
func (s *Service) checkCatalog(ctx context.Context) error {
	h := fnv.New64a()
	h.Write(builtinFile)
	sum := int64(h.Sum64() >> 1)
	var have int64
	err := s.sqlDB().QueryRowContext(ctx, s.bind("SELECT version FROM sender_versions WHERE domain_id = ?"), catalogRow).Scan(&have)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("senders: catalog version: %w", err)
	}
	if err == nil && have == sum {
		return nil
	}
	tx, unlock, err := s.begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("senders: catalog version: %w", err)
	}
	defer unlock()
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE sender_sources SET enriched_at = -1"); err != nil {
		return fmt.Errorf("senders: catalog changed: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO sender_versions (domain_id, version) VALUES (?, ?)
		ON CONFLICT (domain_id) DO UPDATE SET version = excluded.version`), catalogRow, sum); err != nil {
		return fmt.Errorf("senders: catalog version: %w", err)
	}
	return tx.Commit()
}

// pendingIDs are the group ids of sources without a sender_sources row: the pending sender
// group and the unknown country.
func (s *Service) pendingIDs(ctx context.Context) (sender, country int64, err error) {
	tx, unlock, err := s.begin(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	defer tx.Rollback()
	ids := newGroupIDs(tx, s)
	if sender, err = ids.get(ctx, DimSender, PendingKey, group{Key: PendingKey, Type: TypeUnknown, Pending: true}, ""); err != nil {
		return 0, 0, err
	}
	if country, err = ids.get(ctx, DimCountry, "", group{}, ""); err != nil {
		return 0, 0, err
	}
	return sender, country, tx.Commit()
}

// yearStart is the SQL of the first day of the year holding day number col.
func (s *Service) yearStart(col string) string {
	if s.dialect == store.Postgres {
		return "(date_trunc('year', DATE '1970-01-01' + " + col + ")::date - DATE '1970-01-01')"
	}
	return "CAST(julianday(strftime('%Y-01-01', " + col + " * 86400, 'unixepoch')) - 2440587.5 AS INTEGER)"
}

// dekadStart is the SQL of the first day of the dekad (days 1–10, 11–20, 21–end) holding day
// number col, as rollup.GrainDekad.Start.
func (s *Service) dekadStart(col string) string {
	if s.dialect == store.Postgres {
		dom := "(EXTRACT(DAY FROM DATE '1970-01-01' + " + col + ")::integer - 1)"
		return "(" + col + " - " + dom + " + LEAST(" + dom + " / 10, 2) * 10)"
	}
	dom := "(CAST(strftime('%d', " + col + " * 86400, 'unixepoch') AS INTEGER) - 1)"
	return "(" + col + " - " + dom + " + MIN(" + dom + " / 10, 2) * 10)"
}

// outcomeSums are the SQL sums of the DMARC, DKIM, SPF and both passes of rows with an
// outcome column.
func outcomeSums(prefix string) string {
	sum := func(pred func(int8) bool) string {
		var codes []string
		for o := int8(0); o < rollup.Outcomes; o++ {
			if pred(o) {
				codes = append(codes, strconv.Itoa(int(o)))
			}
		}
		if len(codes) == 0 {
			return "0"
		}
		return "SUM(CASE WHEN " + prefix + "outcome IN (" + strings.Join(codes, ",") + ") THEN " + prefix + "messages ELSE 0 END)"
	}
	return sum(rollup.DMARCPass) + ", " + sum(rollup.DKIMPass) + ", " + sum(rollup.SPFPass) + ", " +
		sum(func(o int8) bool { return rollup.DKIMPass(o) && rollup.SPFPass(o) })
}

// rebuildDomain replaces domain d's rollup rows (0: the countries of all domains) in one
// transaction, with the fingerprint read in the same snapshot.
func (s *Service) rebuildDomain(ctx context.Context, d int32) error {
	pendSender, pendCountry, err := s.pendingIDs(ctx)
	if err != nil {
		return err
	}
	opts := &sql.TxOptions{}
	if s.dialect == store.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, unlock, err := s.begin(ctx, opts)
	if err != nil {
		return fmt.Errorf("senders: rebuild domain %d: %w", d, err)
	}
	defer unlock()
	defer tx.Rollback()
	fps, err := fingerprints(ctx, tx)
	if err != nil {
		return err
	}
	exec := func(q string, args ...any) error {
		if _, err := tx.ExecContext(ctx, s.bind(q), args...); err != nil {
			return fmt.Errorf("senders: rebuild domain %d: %w", d, err)
		}
		return nil
	}
	for _, t := range []string{"rollup_sender_day", "rollup_sender_dekad", "rollup_sender_month", "rollup_sender_year", "rollup_sender_last", "rollup_sender_total"} {
		if err := exec("DELETE FROM "+t+" WHERE domain_id = ?", d); err != nil {
			return err
		}
	}
	type source struct {
		day, month, last string // per-source tables
		where            string
	}
	src := source{day: "rollup_src_domain_day", month: "rollup_src_domain_month", last: "rollup_ip_domain_year", where: " WHERE r.domain_id = ?"}
	dims := []struct {
		dim     int
		col     string
		pending int64
	}{{DimSender, "group_id", pendSender}, {DimCountry, "country_id", pendCountry}}
	args := []any{d}
	if d == 0 {
		src = source{day: "rollup_src_day", month: "rollup_src_month", last: "rollup_ip_year", where: ""}
		dims = dims[1:]
		args = nil
	}
	sums := "SUM(r.messages), " + outcomeSums("r.")
	for _, dm := range dims {
		key := fmt.Sprintf("COALESCE(ss.%s, %d)", dm.col, dm.pending)
		head := fmt.Sprintf("SELECT %d, %d, ", d, dm.dim)
		join := " r LEFT JOIN sender_sources ss ON ss.ip_id = r.ip_id"
		cols := " (domain_id, dim, period, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, next_day) "
		// next_day: the first day of the group's next row (window functions run after GROUP BY).
		next := func(first, period string) string {
			return ", LEAD(" + first + ") OVER (PARTITION BY " + key + " ORDER BY " + period + ")"
		}
		if err := exec("INSERT INTO rollup_sender_day"+cols+head+"r.period, "+key+", "+sums+", MIN(r.period), MAX(r.period)"+next("r.period", "r.period")+" FROM "+src.day+join+src.where+
			" GROUP BY r.period, "+key, args...); err != nil {
			return err
		}
		if err := exec("INSERT INTO rollup_sender_month"+cols+head+"r.period, "+key+", "+sums+", MIN(r.first_day), MAX(r.last_day)"+next("MIN(r.first_day)", "r.period")+" FROM "+src.month+join+src.where+
			" GROUP BY r.period, "+key, args...); err != nil {
			return err
		}
		coarse := func(table, from, start string) error {
			return exec("INSERT INTO "+table+cols+"SELECT domain_id, dim, "+start+", key_id, SUM(messages), SUM(dmarc_pass), SUM(dkim_pass), SUM(spf_pass), SUM(both_pass), MIN(first_day), MAX(last_day)"+
				", LEAD(MIN(first_day)) OVER (PARTITION BY key_id ORDER BY "+start+") FROM "+from+" WHERE domain_id = ? AND dim = ? GROUP BY domain_id, dim, "+start+", key_id",
				d, dm.dim)
		}
		if err := coarse("rollup_sender_dekad", "rollup_sender_day", s.dekadStart("period")); err != nil {
			return err
		}
		if err := coarse("rollup_sender_year", "rollup_sender_month", s.yearStart("period")); err != nil {
			return err
		}
		lastWhere := " WHERE messages > 0"
		if d != 0 {
			lastWhere += " AND domain_id = ?"
		}
		if err := exec("INSERT INTO rollup_sender_last (domain_id, dim, last_day, key_id, ips) "+head+"x.ld, "+key+", COUNT(*) FROM (SELECT ip_id, MAX(last_day) AS ld FROM "+
			src.last+lastWhere+" GROUP BY ip_id) x LEFT JOIN sender_sources ss ON ss.ip_id = x.ip_id GROUP BY x.ld, "+key, args...); err != nil {
			return err
		}
		if err := exec(`INSERT INTO rollup_sender_total (domain_id, dim, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips)
			SELECT y.domain_id, y.dim, y.key_id, y.messages, y.dmarc_pass, y.dkim_pass, y.spf_pass, y.both_pass, y.first_day, y.last_day, COALESCE(l.ips, 0)
			FROM (SELECT domain_id, dim, key_id, SUM(messages) AS messages, SUM(dmarc_pass) AS dmarc_pass, SUM(dkim_pass) AS dkim_pass, SUM(spf_pass) AS spf_pass,
				SUM(both_pass) AS both_pass, MIN(first_day) AS first_day, MAX(last_day) AS last_day FROM rollup_sender_year WHERE domain_id = ? AND dim = ? GROUP BY domain_id, dim, key_id) y
			LEFT JOIN (SELECT key_id, SUM(ips) AS ips FROM rollup_sender_last WHERE domain_id = ? AND dim = ? GROUP BY key_id) l ON l.key_id = y.key_id`,
			d, dm.dim, d, dm.dim); err != nil {
			return err
		}
	}
	var maxDay sql.NullInt64
	q := "SELECT MAX(last_day) FROM " + src.last
	if d != 0 {
		q += " WHERE domain_id = ?"
	}
	if err := tx.QueryRowContext(ctx, s.bind(q), args...).Scan(&maxDay); err != nil {
		return fmt.Errorf("senders: rebuild domain %d: %w", d, err)
	}
	var minDay sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.bind("SELECT MIN(first_day) FROM rollup_sender_total WHERE domain_id = ?"), d).Scan(&minDay); err != nil {
		return fmt.Errorf("senders: rebuild domain %d: %w", d, err)
	}
	fp := fps[d]
	if err := exec(`INSERT INTO rollup_sender_state (domain_id, reports, version, max_day, min_day, built_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (domain_id) DO UPDATE SET reports = excluded.reports, version = excluded.version, max_day = excluded.max_day, min_day = excluded.min_day,
		built_at = excluded.built_at`,
		d, fp.reports, fp.version, maxDay.Int64, minDay.Int64, s.now().Unix()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("senders: rebuild domain %d: commit: %w", d, err)
	}
	return nil
}

// window is a question's days [from, to), either end open, as pkg/analytics reads the common
// filters: the days whose start lies in [Start, End).
type window struct {
	from, to       int32
	hasFrom, hasTo bool
}

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

// part is a range of one grain's periods.
type part struct {
	table        string
	lo, hi       int32
	hasLo, hasHi bool
}

var grainTables = map[rollup.Grain]string{rollup.GrainDay: "rollup_sender_day", rollup.GrainDekad: "rollup_sender_dekad",
	rollup.GrainMonth: "rollup_sender_month", rollup.GrainYear: "rollup_sender_year"}

// senderGrains are the grains of the sender rollup, finest first.
var senderGrains = []rollup.Grain{rollup.GrainDay, rollup.GrainDekad, rollup.GrainMonth, rollup.GrainYear}

// cover cuts [lo, hi) into whole years, then whole months, dekads, then days at the edges: every row
// read lies inside the window, so first and last days are exact too.
func cover(lo, hi int32, hasLo, hasHi bool, grains []rollup.Grain) []part {
	if hasLo && hasHi && lo >= hi {
		return nil
	}
	g := grains[len(grains)-1]
	if g == rollup.GrainDay {
		return []part{{table: grainTables[g], lo: lo, hi: hi, hasLo: hasLo, hasHi: hasHi}}
	}
	finer := grains[:len(grains)-1]
	cLo, cHi := lo, hi
	if hasLo && g.Start(lo) != lo {
		cLo = g.Next(lo)
	}
	if hasHi {
		cHi = g.Start(hi)
	}
	if hasLo && hasHi && cLo >= cHi {
		return cover(lo, hi, hasLo, hasHi, finer)
	}
	out := []part{{table: grainTables[g], lo: cLo, hi: cHi, hasLo: hasLo, hasHi: hasHi}}
	if hasLo && cLo != lo {
		out = append(out, cover(lo, cLo, true, true, finer)...)
	}
	if hasHi && cHi != hi {
		out = append(out, cover(cHi, hi, true, true, finer)...)
	}
	return out
}

// Sums are one group's numbers in one domain (0: all domains) over a window.
type Sums struct {
	DomainID  int32
	KeyID     int64
	Messages  int64
	DMARCPass int64
	DKIMPass  int64
	SPFPass   int64
	BothPass  int64
	IPs       int64
	First     int32
	Last      int32
}

// fromRollup answers dim for the domains (a nil list: every domain with rows; with dim
// DimCountry and all, domain 0) over w from the sender rollup. ok is false when it cannot:
// some domain is stale or the window ends before a domain's last day (then the distinct
// sources of the window are not in rollup_sender_last).
func (s *Service) fromRollup(ctx context.Context, dim int, domains []int32, all bool, w window) ([]Sums, bool, error) {
	q, args, ok, err := s.rollupQuery(ctx, dim, domains, all, w)
	if err != nil || !ok || q == "" {
		return nil, ok, err
	}
	out, err := s.readSums(ctx, q, args)
	return out, err == nil, err
}

// rollupQuery is the read of fromRollup: a query of totalsQuery's or windowQuery's shape, or
// ok false when the sender rollup cannot answer; "" with ok when no domain has rows.
func (s *Service) rollupQuery(ctx context.Context, dim int, domains []int32, all bool, w window) (string, []any, bool, error) {
	pl, ok, err := s.rollupPlan(ctx, dim, domains, all, w)
	if err != nil || !ok || pl.list == "" {
		return "", nil, ok, err
	}
	q, args := pl.query(dim, w)
	return q, args, true, nil
}

// query is the plan's read of dim over w.
func (p plan) query(dim int, w window) (string, []any) {
	if p.totals {
		return totalsQuery(dim, p.list, w, p.every)
	}
	return windowQuery(dim, p.list, w)
}

// plan is how the sender rollup answers a question: the list of domains ("" when none has
// rows), whether it holds every domain with rows of the dim, and which read serves the window
// (totals: totalsQuery, a window running to the data's end read as totals less the rows
// before it; else windowQuery).
type plan struct {
	list          string
	every, totals bool
}

// rollupPlan is the plan of rollupQuery, ok false when the sender rollup cannot answer.
func (s *Service) rollupPlan(ctx context.Context, dim int, domains []int32, all bool, w window) (plan, bool, error) {
	cur, err := fingerprints(ctx, s.sqlDB())
	if err != nil {
		return plan{}, false, err
	}
	have, err := s.states(ctx)
	if err != nil {
		return plan{}, false, err
	}
	if all {
		domains = domains[:0]
		if dim == DimCountry {
			domains = append(domains, 0)
		} else {
			for d := range cur {
				if d != 0 {
					domains = append(domains, d)
				}
			}
		}
	}
	minDay, maxDay := int32(math.MaxInt32), int32(math.MinInt32)
	for _, d := range domains {
		st, ok := have[d]
		if !ok || st.fp != cur[d] || (w.hasTo && w.to <= st.maxDay) {
			return plan{}, false, nil
		}
		minDay, maxDay = min(minDay, st.minDay), max(maxDay, st.maxDay)
	}
	if len(domains) == 0 {
		return plan{}, true, nil
	}
	ids := make([]int64, len(domains))
	for i, d := range domains {
		ids[i] = int64(d)
	}
	// In order, so the same question is the same statement text (the domains come from a map):
	// PostgreSQL's driver then reuses its prepared statement instead of parsing and planning
	// texts of a thousand ids again for each request.
	slices.Sort(ids)
	return plan{list: int64List(ids), every: all && dim == DimSender, totals: !w.hasFrom || w.from-minDay <= maxDay-w.from}, true, nil
}

// totalsQuery reads a window [from, the data's end) as each group's total less its rows before
// the window (cut into whole years, months, dekads and days as cover does): about one row per
// group when the window holds most of the data, as "the last 365 days" of a year's data does.
// The first day seen in the window is the greatest next_day of the rows before it (the first
// day with data after the last one before the window), or the total's first day when none.
//
// every says the list holds every domain with rows of dim: the rows before the window are then
// read for all domains (a range scan of the period indexes of migration 22, rather than a
// descent per domain, and a planner spared five lists of a thousand ids) and matched to the
// totals of the list by the join, so a domain outside it (one whose reports were all deleted
// keeps its rows) still adds nothing.
func totalsQuery(dim int, list string, w window, every bool) (string, []any) {
	before := " AND domain_id IN (" + list + ")"
	if every {
		before = ""
	}
	return totalsWhere(dim, " AND {t}domain_id IN ("+list+")", before, w)
}

// totalsWhere is totalsQuery for the totals rows matching where (a condition from " AND " on
// rollup_sender_total's columns, each written {t}column) and the rows before the window
// matching before (the same on the period tables' columns, unqualified).
func totalsWhere(dim int, where, before string, w window) (string, []any) {
	d := strconv.Itoa(dim)
	if !w.hasFrom {
		return "SELECT domain_id, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips FROM rollup_sender_total" +
			" WHERE dim = " + d + strings.ReplaceAll(where, "{t}", ""), nil
	}
	var b strings.Builder
	b.WriteString("SELECT t.domain_id, t.key_id, t.messages - COALESCE(p.messages, 0), t.dmarc_pass - COALESCE(p.dmarc_pass, 0), " +
		"t.dkim_pass - COALESCE(p.dkim_pass, 0), t.spf_pass - COALESCE(p.spf_pass, 0), t.both_pass - COALESCE(p.both_pass, 0), " +
		"CASE WHEN p.key_id IS NULL THEN t.first_day ELSE p.next_day END, t.last_day, t.ips - COALESCE(p.ips, 0) " +
		"FROM rollup_sender_total t LEFT JOIN (")
	p, args := beforeQuery(dim, before, w)
	b.WriteString(p)
	b.WriteString(") p ON p.domain_id = t.domain_id AND p.key_id = t.key_id")
	b.WriteString(" WHERE t.dim = " + d + strings.ReplaceAll(where, "{t}", "t."))
	return b.String(), args
}

// beforeQuery sums each domain's groups over the days before w's first day (w.hasFrom), for
// the rows matching before: the part totalsQuery subtracts from the totals.
func beforeQuery(dim int, before string, w window) (string, []any) {
	d := strconv.Itoa(dim)
	var args []any
	var b strings.Builder
	// BIGINT: PostgreSQL's SUM of BIGINT is NUMERIC, which made every difference with the
	// totals NUMERIC too (slower to subtract, compare and add up again when ranking).
	b.WriteString("SELECT domain_id, key_id, CAST(SUM(messages) AS BIGINT) AS messages, CAST(SUM(dmarc_pass) AS BIGINT) AS dmarc_pass, " +
		"CAST(SUM(dkim_pass) AS BIGINT) AS dkim_pass, CAST(SUM(spf_pass) AS BIGINT) AS spf_pass, CAST(SUM(both_pass) AS BIGINT) AS both_pass, " +
		"MAX(next_day) AS next_day, CAST(SUM(ips) AS BIGINT) AS ips FROM (")
	for _, p := range cover(0, w.from, false, true, senderGrains) {
		b.WriteString("SELECT domain_id, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, next_day, 0 AS ips FROM " + p.table +
			" WHERE dim = " + d + before)
		if p.hasLo {
			b.WriteString(" AND period >= ?")
			args = append(args, p.lo)
		}
		b.WriteString(" AND period < ?")
		args = append(args, p.hi)
		b.WriteString(" UNION ALL ")
	}
	b.WriteString("SELECT domain_id, key_id, 0, 0, 0, 0, 0, CAST(NULL AS INTEGER), ips FROM rollup_sender_last WHERE dim = " + d +
		before + " AND last_day < ?")
	args = append(args, w.from)
	b.WriteString(") x GROUP BY domain_id, key_id")
	return b.String(), args
}

// windowQuery reads a window from the sums of the periods covering it and, from
// rollup_sender_last, the sources whose last day lies in it (the distinct sources of a window
// running to the data's end), grouped once per domain and group.
func windowQuery(dim int, list string, w window) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("SELECT domain_id, key_id, CAST(SUM(messages) AS BIGINT), CAST(SUM(dmarc_pass) AS BIGINT), CAST(SUM(dkim_pass) AS BIGINT), " +
		"CAST(SUM(spf_pass) AS BIGINT), CAST(SUM(both_pass) AS BIGINT), MIN(first_day), MAX(last_day), CAST(SUM(ips) AS BIGINT) FROM (")
	for _, p := range cover(w.from, w.to, w.hasFrom, w.hasTo, senderGrains) {
		b.WriteString("SELECT domain_id, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, 0 AS ips FROM " + p.table +
			" WHERE dim = " + strconv.Itoa(dim) + " AND domain_id IN (" + list + ")")
		if p.hasLo {
			b.WriteString(" AND period >= ?")
			args = append(args, p.lo)
		}
		if p.hasHi {
			b.WriteString(" AND period < ?")
			args = append(args, p.hi)
		}
		b.WriteString(" UNION ALL ")
	}
	b.WriteString("SELECT domain_id, key_id, 0, 0, 0, 0, 0, CAST(NULL AS INTEGER), CAST(NULL AS INTEGER), ips FROM rollup_sender_last WHERE dim = " + strconv.Itoa(dim) + " AND domain_id IN (" + list + ")")
	if w.hasFrom {
		b.WriteString(" AND last_day >= ?")
		args = append(args, w.from)
	}
	b.WriteString(") t GROUP BY domain_id, key_id")
	return b.String(), args
}

// readSums runs a query of totalsQuery's or windowQuery's shape; groups without messages in
// the window are left out.
func (s *Service) readSums(ctx context.Context, q string, args []any) ([]Sums, error) {
	var out []Sums
	rows, err := s.sqlDB().QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("senders: read rollup: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Sums
		var first, last sql.NullInt32
		if err := rows.Scan(&r.DomainID, &r.KeyID, &r.Messages, &r.DMARCPass, &r.DKIMPass, &r.SPFPass, &r.BothPass, &first, &last, &r.IPs); err != nil {
			return nil, fmt.Errorf("senders: read rollup: %w", err)
		}
		if r.Messages <= 0 {
			continue
		}
		r.First, r.Last = first.Int32, last.Int32
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("senders: read rollup: %w", err)
	}
	return out, nil
}

// Groups returns the sender groups (or countries) of the ids.
func (s *Service) groups(ctx context.Context, ids []int64) (map[int64]group, map[int64]string, error) {
	gs, names := map[int64]group{}, map[int64]string{}
	if len(ids) == 0 {
		return gs, names, nil
	}
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT id, dim, key, sender, sender_type, base_domain, asn, as_org, name, pending FROM sender_groups WHERE id IN (`+int64List(ids)+`)`)
	if err != nil {
		return nil, nil, fmt.Errorf("senders: groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var dim int
		var g group
		var sender, base, org, name sql.NullString
		var asn sql.NullInt64
		if err := rows.Scan(&id, &dim, &g.Key, &sender, &g.Type, &base, &asn, &org, &name, &g.Pending); err != nil {
			return nil, nil, fmt.Errorf("senders: groups: %w", err)
		}
		g.Sender, g.BaseDomain, g.ASN, g.ASOrg = sender.String, base.String, asn.Int64, org.String
		gs[id] = g
		names[id] = name.String
	}
	return gs, names, rows.Err()
}

// domainNames maps rollup domain ids to names.
func (s *Service) domainNames(ctx context.Context, ids []int64) (map[int32]string, error) {
	out := map[int32]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.sqlDB().QueryContext(ctx, "SELECT id, name FROM rollup_domains WHERE id IN ("+int64List(ids)+")")
	if err != nil {
		return nil, fmt.Errorf("senders: domain names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int32
		var n string
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("senders: domain names: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// domainID is the rollup id of a policy domain; 0 when it has no rollups.
func (s *Service) domainID(ctx context.Context, name string) (int32, error) {
	var id int32
	err := s.sqlDB().QueryRowContext(ctx, s.bind("SELECT id FROM rollup_domains WHERE name = ?"), name).Scan(&id)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("senders: domain %s: %w", name, err)
	}
	return id, nil
}
