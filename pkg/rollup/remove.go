package rollup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// Remove takes the given reports out of the rollups, inside tx: the transaction that then
// deletes them (retention, DELETE /api/reports/{id}). It returns the ids that are still stored
// reports, which the caller deletes in tx, and the domains whose rollups changed (for the
// answer cache, once tx is committed).
//
// A report is subtracted exactly when its contribution is in the rollups: its rollup_applied
// row exists. The subtraction recomputes the report's cells from its records exactly as Apply
// added them (the day spreading is deterministic per report), so every rollup ends as if the
// report had never been applied: sums drop, rows that reach zero go, and the first and last
// days of the coarse source tables are recomputed from the day rows that remain.
//
// Races: the report rows are locked first (PostgreSQL), so two removals of the same report
// take turns and the second finds it gone. A report nobody applied yet is claimed here (its
// rollup_applied row inserted, waiting for a concurrent Apply's uncommitted claim of it), so
// no Apply adds it while it is being deleted, and an Apply that claimed it first is waited for
// and then subtracted.
func (r *Rollup) Remove(ctx context.Context, tx *gorm.DB, ids []int64) (stored []int64, domains []string, err error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil, nil, nil
	}
	tx = tx.WithContext(ctx)
	lock := `SELECT id FROM reports WHERE id IN ? ORDER BY id`
	if r.dialect == store.Postgres {
		lock += ` FOR UPDATE`
	}
	if err := tx.Raw(lock, ids).Scan(&stored).Error; err != nil {
		return nil, nil, fmt.Errorf("rollup: lock reports: %w", err)
	}
	if len(stored) == 0 {
		return nil, nil, nil
	}
	fresh, err := r.claim(tx, stored)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(fresh)
	var applied []int64
	for _, id := range stored {
		if _, ok := slices.BinarySearch(fresh, id); !ok {
			applied = append(applied, id)
		}
	}
	if len(applied) == 0 {
		return stored, nil, nil
	}
	reps, err := loadReports(tx, applied)
	if err != nil {
		return nil, nil, err
	}
	recs, err := loadRecords(ctx, tx, applied)
	if err != nil {
		return nil, nil, err
	}
	dims, err := resolveDims(ctx, tx, r.dialect, reps, recs)
	if err != nil {
		return nil, nil, err
	}
	acc := newAccumulator(r.maxHeld)
	flush := func() error {
		err := r.subtract(ctx, tx, acc)
		acc.reset()
		return err
	}
	for _, rep := range reps {
		if err := acc.addReport(rep, dims, recs[rep.ID], flush); err != nil {
			return nil, nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var domainIDs []int64
	for _, rep := range reps {
		if !seen[rep.Domain] {
			seen[rep.Domain] = true
			domains = append(domains, rep.Domain)
			domainIDs = append(domainIDs, int64(dims.domains[rep.Domain]))
		}
	}
	slices.Sort(domains)
	// The sender rollup (pkg/senders) trusts a domain's rows while its report count in the
	// rollups is unchanged; a removal followed by a new report would keep the count, so the
	// removal marks its domains (and all domains, 0) stale the way a changed source does.
	if err := tx.Exec(`INSERT INTO sender_versions (domain_id, version)
		SELECT id, 1 FROM rollup_domains WHERE id IN ? UNION SELECT 0, 1 WHERE 1=1
		ON CONFLICT (domain_id) DO UPDATE SET version = sender_versions.version + 1`, domainIDs).Error; err != nil {
		return nil, nil, fmt.Errorf("rollup: mark sender rollups stale: %w", err)
	}
	return stored, domains, nil
}

// Invalidate drops the cached answers of domains (after the transaction that changed their
// rollups is committed).
func (r *Rollup) Invalidate(ctx context.Context, domains []string) {
	if len(domains) == 0 {
		return
	}
	if err := r.cache.Invalidate(ctx, domains); err != nil {
		r.log.Warn("rollup: cache invalidation failed", "domains", len(domains), "err", err)
	}
}

// subtract takes the accumulated rows out of the rollup tables: each row's sums drop by the
// accumulated amounts (a row absent, say a period the rollup retention deleted, stays absent),
// rows left with nothing are deleted, and then the first and last days of the coarse source
// rows are recomputed from the day rows, which by then hold the subtraction too. Tables and
// rows go in the same order as upsert, so a removal and an Apply lock shared rows in the same
// order.
func (r *Rollup) subtract(ctx context.Context, tx *gorm.DB, a *accumulator) error {
	sorted := make([][]key, len(a.tables)) // kept for the coarse source tables only
	for i, t := range a.tables {
		if t.derived() {
			a.fill(t)
		}
		keys := make([]key, 0, len(t.rows))
		for k := range t.rows {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, key.compare)
		if len(keys) > 0 {
			if err := r.decrement(ctx, tx, t, keys); err != nil {
				return fmt.Errorf("subtract from %s: %w", t.name(), err)
			}
		}
		if t.fam.Kind == Sources && t.grain != GrainDay {
			sorted[i] = keys // and its rows, which recomputeDays reads
		} else if t.derived() {
			clear(t.rows) // the cells hold them
		}
	}
	for i, t := range a.tables {
		if len(sorted[i]) == 0 || t.fam.Kind != Sources || t.grain == GrainDay {
			continue
		}
		if err := r.recomputeDays(ctx, tx, t, sorted[i]); err != nil {
			return fmt.Errorf("first and last days of %s: %w", t.name(), err)
		}
	}
	return nil
}

// measure is the summed column of t (messages or reports).
func (t *table) measure() string { return t.fam.Measures(t.grain)[0] }

// match is the SQL condition equating t's key columns with those of alias (PostgreSQL) or
// with one ? each (alias empty).
func (t *table) match(alias string) string {
	var conds []string
	for _, c := range t.fam.PK {
		if alias == "" {
			conds = append(conds, fmt.Sprintf("%s.%s = ?", t.name(), c))
		} else {
			conds = append(conds, fmt.Sprintf("%s.%s = %s.%s", t.name(), c, alias, c))
		}
	}
	return strings.Join(conds, " AND ")
}

// keyArrays are the key columns of keys as one int64 array each (PostgreSQL), then the measure.
func (t *table) keyArrays(keys []key) []any {
	args := make([]any, 0, len(t.fam.PK)+1)
	for _, c := range append(slices.Clone(t.fam.PK), t.measure()) {
		a := make([]int64, len(keys))
		for j, k := range keys {
			a[j] = colValue(c, k, t.rows[k]).(int64)
		}
		args = append(args, a)
	}
	return args
}

// unnest is the FROM item of the keys (and the amounts) sent as arrays: k(cols..., amount).
func (t *table) unnest() string { return t.unnestAs("") }

// unnestAs is unnest, with extra columns after amount (" WITH ORDINALITY", ", ord").
func (t *table) unnestAs(ordinality string) string {
	var b strings.Builder
	b.WriteString("unnest(")
	for i, c := range t.fam.PK {
		fmt.Fprintf(&b, "$%d::%s, ", i+1, pgArrayType(c))
	}
	ord := ""
	if ordinality != "" {
		ord = ", ord"
	}
	fmt.Fprintf(&b, "$%d::bigint[])%s AS k(%s, amount%s)", len(t.fam.PK)+1, ordinality, strings.Join(t.fam.PK, ", "), ord)
	return b.String()
}

func (r *Rollup) decrement(ctx context.Context, tx *gorm.DB, t *table, keys []key) error {
	conn := tx.Statement.ConnPool
	m := t.measure()
	if r.dialect == store.Postgres {
		// An upsert of the negated amounts, in the keys' order (key.compare, as upsert's), so a removal and an
		// Apply lock shared rows in the same order (an UPDATE … FROM locks them in whatever
		// order its join yields, and deadlocks). Only rows that exist: one the rollup
		// retention deleted stays deleted.
		cols := append(slices.Clone(t.fam.PK), t.fam.Measures(t.grain)...)
		sel := make([]string, 0, len(cols))
		for _, c := range cols {
			switch c {
			case m:
				sel = append(sel, "-k.amount")
			case "first_day", "last_day":
				sel = append(sel, "0") // never inserted: the row exists
			default:
				sel = append(sel, "k."+c)
			}
		}
		var exists []string
		for _, c := range t.fam.PK {
			exists = append(exists, fmt.Sprintf("e.%s = k.%s", c, c))
		}
		dec := fmt.Sprintf("INSERT INTO %s AS x (%s) SELECT %s FROM %s WHERE EXISTS (SELECT 1 FROM %s e WHERE %s) ORDER BY %s ON CONFLICT (%s) DO UPDATE SET %s = x.%s + excluded.%s",
			t.name(), strings.Join(cols, ", "), strings.Join(sel, ", "), t.unnestAs(" WITH ORDINALITY"), t.name(), strings.Join(exists, " AND "),
			"k.ord", strings.Join(t.fam.PK, ", "), m, m, m)
		for start := 0; start < len(keys); start += pgChunk {
			args := t.keyArrays(keys[start:min(start+pgChunk, len(keys))])
			if _, err := conn.ExecContext(ctx, dec, args...); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s USING %s WHERE %s AND %s.%s <= 0",
				t.name(), t.unnest(), t.match("k"), t.name(), m), args...); err != nil {
				return err
			}
		}
		return nil
	}
	// SQLite runs in process: a statement per row costs microseconds, no round trip.
	upd, err := conn.PrepareContext(ctx, fmt.Sprintf("UPDATE %s SET %s = %s - ? WHERE %s RETURNING %s", t.name(), m, m, t.match(""), m))
	if err != nil {
		return err
	}
	defer upd.Close()
	del, err := conn.PrepareContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", t.name(), t.match("")))
	if err != nil {
		return err
	}
	defer del.Close()
	args := make([]any, 0, len(t.fam.PK)+1)
	for _, k := range keys {
		args = append(args[:0], t.rows[k].n)
		for _, c := range t.fam.PK {
			args = append(args, colValue(c, k, nil))
		}
		var left int64
		switch err := upd.QueryRowContext(ctx, args...).Scan(&left); {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return err
		}
		if left <= 0 {
			if _, err := del.ExecContext(ctx, args[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// recomputeDays sets first_day and last_day of the given rows of a coarse source table from
// the day table its family reads (its own or its base's): the days in the row's old range that
// still have messages. The new range lies inside the old one, so the old range bounds the
// search. A row whose days are gone from the day table (a rollup retention that deleted day
// periods but kept the month straddling its cutoff) keeps its range.
func (r *Rollup) recomputeDays(ctx context.Context, tx *gorm.DB, t *table, keys []key) error {
	day := t.fam.ReadTable(GrainDay)
	var same []string
	for _, c := range t.fam.KeyCols() {
		same = append(same, fmt.Sprintf("d.%s = %s.%s", c, t.name(), c))
	}
	within := fmt.Sprintf("%s AND d.period BETWEEN %s.first_day AND %s.last_day", strings.Join(same, " AND "), t.name(), t.name())
	set := fmt.Sprintf("first_day = COALESCE((SELECT MIN(d.period) FROM %s d WHERE %s), first_day), last_day = COALESCE((SELECT MAX(d.period) FROM %s d WHERE %s), last_day)",
		day, within, day, within)
	conn := tx.Statement.ConnPool
	if r.dialect == store.Postgres {
		for start := 0; start < len(keys); start += pgChunk {
			args := t.keyArrays(keys[start:min(start+pgChunk, len(keys))])
			if _, err := conn.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET %s FROM %s WHERE %s", t.name(), set, t.unnest(), t.match("k")), args...); err != nil {
				return err
			}
		}
		return nil
	}
	st, err := conn.PrepareContext(ctx, fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.name(), set, t.match("")))
	if err != nil {
		return err
	}
	defer st.Close()
	args := make([]any, 0, len(t.fam.PK))
	for _, k := range keys {
		args = args[:0]
		for _, c := range t.fam.PK {
			args = append(args, colValue(c, k, nil))
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}
