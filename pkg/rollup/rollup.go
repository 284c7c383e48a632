// Package rollup maintains the analytics rollup tables: per-day, per-month (and per-year) aggregates of the
// stored reports, so analytics answer from a few thousand rollup rows instead of scanning
// years of records.
//
// Maintenance is incremental and off ingestion's hot path: after a file is stored, a
// rollup:apply task adds its reports' contributions (Apply); a periodic rollup:catchup finds
// any report not rolled up yet (CatchUp), so a lost task only delays rollups. Each report's
// contribution is added exactly once: the rollup_applied row that claims it is written in the
// same transaction as the rollup upserts, so a retried, duplicated or concurrent task finds it
// claimed and adds nothing.
//
// The tables, their dimensions and their codes are described by Families (schema.go), the
// day spreading by Span (spread.go), the outcome and policy codes in codes.go.
package rollup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/store"
)

// Rollup applies reports to the rollup tables. Safe for concurrent use, across processes too.
type Rollup struct {
	st      *store.Store
	db      *gorm.DB
	dialect store.Dialect
	cache   *gencache.Cache
	log     *slog.Logger
	now     func() time.Time
	maxHeld int // rows a batch holds in memory before writing them
	// onApplied hears which domains an Apply changed, after they are committed (alert checks).
	onApplied func(ctx context.Context, domains []string)
}

// OnApplied sets fn to run after each Apply that changed the rollups of some domains, with
// those domains (sorted). Set it before the first Apply.
func (r *Rollup) OnApplied(fn func(ctx context.Context, domains []string)) { r.onApplied = fn }

// New maintains st's rollups and invalidates cache (may be nil) for the domains they change.
func New(st *store.Store, cache *gencache.Cache, log *slog.Logger) *Rollup {
	return &Rollup{st: st, db: st.DB(), dialect: st.Dialect(), cache: cache, log: log, now: time.Now, maxHeld: maxHeld}
}

// batchReports bounds the reports applied in one transaction. SQLite has one writer at a time,
// so its transactions stay short to let ingestion in.
func (r *Rollup) batchReports() int {
	if r.dialect == store.Postgres {
		return 2000
	}
	return 250
}

// Apply adds the contributions of the given reports, skipping those already applied (and ids
// that are not stored reports). It is idempotent and safe to run concurrently with itself.
func (r *Rollup) Apply(ctx context.Context, reportIDs []int64) error {
	ids := slices.Clone(reportIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	domains := map[string]bool{}
	var errs []error
	for start := 0; start < len(ids); start += r.batchReports() {
		chunk := ids[start:min(start+r.batchReports(), len(ids))]
		doms, err := r.applySplitting(ctx, chunk)
		if err != nil {
			errs = append(errs, err)
		}
		for _, d := range doms {
			domains[d] = true
		}
	}
	r.applied(ctx, slices.Sorted(maps.Keys(domains)))
	return errors.Join(errs...)
}

// applied tells the answer cache and the OnApplied hook that the rollups of domains changed.
func (r *Rollup) applied(ctx context.Context, domains []string) {
	if len(domains) == 0 {
		return
	}
	// Rollups are committed; a cache that cannot be told serves answers at most its TTL old.
	if err := r.cache.Invalidate(ctx, domains); err != nil {
		r.log.Warn("rollup: cache invalidation failed", "domains", len(domains), "err", err)
	}
	if r.onApplied != nil {
		r.onApplied(ctx, domains)
	}
}

// applySplitting applies ids in one transaction, or, when the database refuses that, in
// halves, down to the single report it refuses: one report (say, counts summing past BIGINT)
// must not hold back the rest of its batch, in Apply or in every later catch-up.
func (r *Rollup) applySplitting(ctx context.Context, ids []int64) ([]string, error) {
	doms, err := r.applyWithRetry(ctx, ids)
	if err == nil || ctx.Err() != nil {
		return doms, err
	}
	if len(ids) == 1 {
		r.log.Error("rollup: report not applied; the catch-up will try it again", "report_id", ids[0], "err", err)
		return nil, fmt.Errorf("rollup: report %d: %w", ids[0], err)
	}
	h := len(ids) / 2
	d1, e1 := r.applySplitting(ctx, ids[:h])
	d2, e2 := r.applySplitting(ctx, ids[h:])
	return append(d1, d2...), errors.Join(e1, e2)
}

// applyWithRetry runs one batch, retrying when PostgreSQL picked it as a deadlock victim (two
// batches upserting the same hot rows; they sort their rows, so this is rare).
func (r *Rollup) applyWithRetry(ctx context.Context, ids []int64) ([]string, error) {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var doms []string
		doms, err = r.applyBatch(ctx, ids)
		if err == nil || !Retryable(err) {
			return doms, err
		}
		r.log.Debug("rollup: batch retried", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return nil, err
}

// Retryable reports whether err is PostgreSQL giving up a transaction that may succeed when run
// again: a deadlock victim or a serialization failure. Callers of Remove retry on it.
func Retryable(err error) bool {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState() == "40P01" || se.SQLState() == "40001"
	}
	return false
}

// applyBatch claims, loads and applies a batch in one transaction; it returns the domains of
// the reports it applied.
func (r *Rollup) applyBatch(ctx context.Context, ids []int64) ([]string, error) {
	var domains []string
	err := r.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		claimed, err := r.claim(tx, ids)
		if err != nil || len(claimed) == 0 {
			return err
		}
		reps, err := loadReports(tx, claimed)
		if err != nil {
			return err
		}
		recs, err := loadRecords(ctx, tx, claimed)
		if err != nil {
			return err
		}
		dims, err := resolveDims(ctx, tx, r.dialect, reps, recs)
		if err != nil {
			return err
		}
		// Rows are added, so a batch may be written in parts: a long report over many sources
		// (years of days) must not hold millions of rows in memory.
		acc := newAccumulator(r.maxHeld)
		flush := func() error {
			err := r.upsert(ctx, tx, acc)
			acc.reset()
			return err
		}
		for _, rep := range reps {
			if err := acc.addReport(rep, dims, recs[rep.ID], flush); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, rep := range reps {
			if !seen[rep.Domain] {
				seen[rep.Domain] = true
				domains = append(domains, rep.Domain)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollup: apply %d reports from id %d: %w", len(ids), ids[0], err)
	}
	return domains, nil
}

// claim marks the reports of ids not applied yet as applied and returns them. A concurrent
// transaction claiming the same report makes this one wait for it on PostgreSQL (and then skip
// the report); SQLite runs one writer at a time.
func (r *Rollup) claim(tx *gorm.DB, ids []int64) ([]int64, error) {
	var claimed []int64
	err := tx.Raw(`INSERT INTO rollup_applied (report_id, applied_at)
		SELECT id, ? FROM reports WHERE id IN ? ORDER BY id
		ON CONFLICT (report_id) DO NOTHING RETURNING report_id`, r.now().UTC(), ids).Scan(&claimed).Error
	if err != nil {
		return nil, fmt.Errorf("claim reports: %w", err)
	}
	return claimed, nil
}

// CatchUp applies up to limit reports that no task applied (a lost or failed rollup:apply) and
// returns how many it found; fewer than limit means none is left behind.
func (r *Rollup) CatchUp(ctx context.Context, limit int) (int, error) {
	var ids []int64
	err := r.db.WithContext(ctx).Raw(`SELECT r.id FROM reports r
		WHERE NOT EXISTS (SELECT 1 FROM rollup_applied a WHERE a.report_id = r.id)
		ORDER BY r.id LIMIT ?`, limit).Scan(&ids).Error
	if err != nil {
		return 0, fmt.Errorf("rollup: find reports not applied: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := r.Apply(ctx, ids); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// IngestReports lists the reports first stored from an ingest: the ones a rollup:apply for
// that file has to add (reports it only repeated were applied with their first file).
func (r *Rollup) IngestReports(ctx context.Context, ingestID int64) ([]int64, error) {
	var ids []int64
	err := r.db.WithContext(ctx).Raw(`SELECT id FROM reports WHERE ingest_id = ? ORDER BY id`, ingestID).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("rollup: reports of ingest %d: %w", ingestID, err)
	}
	return ids, nil
}

// report is what applying needs of a stored report.
type report struct {
	ID        int64
	Domain    string
	OrgKey    string
	OrgName   string
	DateBegin time.Time
	DateEnd   time.Time
	PolicyP   string
	PolicySP  string `gorm:"column:policy_sp"`
	PolicyPct *int
	Testing   string `gorm:"column:policy_testing"`
}

func loadReports(tx *gorm.DB, ids []int64) ([]report, error) {
	var reps []report
	err := tx.Table("reports").Select("id, domain, org_key, org_name, date_begin, date_end, policy_p, policy_sp, policy_pct, policy_testing").
		Where("id IN ?", ids).Order("id").Find(&reps).Error
	if err != nil {
		return nil, fmt.Errorf("load reports: %w", err)
	}
	return reps, nil
}

// record is what applying needs of a stored record.
type record struct {
	IP          [16]byte
	Count       int64
	Disposition string
	DKIM, SPF   string
	HeaderFrom  string
}

func loadRecords(ctx context.Context, tx *gorm.DB, ids []int64) (map[int64][]record, error) {
	rows, err := tx.WithContext(ctx).Raw(`SELECT report_id, ip, count, disposition, dkim, spf, header_from FROM records
		WHERE report_id IN ? ORDER BY report_id, id`, ids).Rows()
	if err != nil {
		return nil, fmt.Errorf("load records: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][]record, len(ids))
	var ip []byte
	for rows.Next() {
		var id int64
		var rec record
		if err := rows.Scan(&id, &ip, &rec.Count, &rec.Disposition, &rec.DKIM, &rec.SPF, &rec.HeaderFrom); err != nil {
			return nil, fmt.Errorf("scan record: %w", err)
		}
		if len(ip) != 16 {
			return nil, fmt.Errorf("record of report %d has a %d-byte ip", id, len(ip))
		}
		copy(rec.IP[:], ip)
		out[id] = append(out[id], rec)
	}
	return out, rows.Err()
}

// dims maps domain names, org keys and source addresses to the small ids rollup rows carry.
type dims struct {
	domains map[string]int32
	orgs    map[string]int32
	ips     map[[16]byte]int32
}

// resolveDims finds or creates the ids of the batch's domains, orgs and sources. Ids are never
// reused or changed, so the query side may cache them.
func resolveDims(ctx context.Context, tx *gorm.DB, dialect store.Dialect, reps []report, recs map[int64][]record) (dims, error) {
	d := dims{domains: map[string]int32{}, orgs: map[string]int32{}, ips: map[[16]byte]int32{}}
	for _, rs := range recs {
		for _, r := range rs {
			d.ips[r.IP] = 0
		}
	}
	if err := resolveIPs(ctx, tx, dialect, d.ips); err != nil {
		return d, err
	}
	orgNames := map[string]string{}
	for _, r := range reps {
		d.domains[r.Domain] = 0
		if _, ok := orgNames[r.OrgKey]; !ok {
			orgNames[r.OrgKey] = r.OrgName
		}
		d.orgs[r.OrgKey] = 0
	}
	if err := resolve(tx, "rollup_domains", "name", d.domains, nil); err != nil {
		return d, err
	}
	if err := resolve(tx, "rollup_orgs", "org_key", d.orgs, orgNames); err != nil {
		return d, err
	}
	return d, nil
}

func resolve(tx *gorm.DB, table, col string, ids map[string]int32, display map[string]string) error {
	names := make([]string, 0, len(ids))
	for n := range ids {
		names = append(names, n)
	}
	slices.Sort(names)
	lookup := func() error {
		var rows []struct {
			ID   int32
			Name string
		}
		if err := tx.Raw(fmt.Sprintf("SELECT id, %s AS name FROM %s WHERE %s IN ?", col, table, col), names).Scan(&rows).Error; err != nil {
			return fmt.Errorf("look up %s: %w", table, err)
		}
		for _, r := range rows {
			ids[r.Name] = r.ID
		}
		return nil
	}
	if err := lookup(); err != nil {
		return err
	}
	var missing []string
	for _, n := range names {
		if ids[n] == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	for _, n := range missing {
		var err error
		if display != nil {
			err = tx.Exec(fmt.Sprintf("INSERT INTO %s (%s, org_name) VALUES (?, ?) ON CONFLICT (%s) DO NOTHING", table, col, col), n, display[n]).Error
		} else {
			err = tx.Exec(fmt.Sprintf("INSERT INTO %s (%s) VALUES (?) ON CONFLICT (%s) DO NOTHING", table, col, col), n).Error
		}
		if err != nil {
			return fmt.Errorf("add to %s: %w", table, err)
		}
	}
	if err := lookup(); err != nil {
		return err
	}
	for _, n := range missing {
		if ids[n] == 0 {
			return fmt.Errorf("%s: %q has no id after insert", table, n)
		}
	}
	return nil
}

// key is a rollup row's key; a family's rows leave the dimensions it lacks at zero.
type key struct {
	period  int32
	domain  int32
	org     int32
	ip      int32
	policy  int8
	matched int8
	outcome int8
	mask    int64
}

func (k key) compare(o key) int {
	return cmp.Or(cmp.Compare(k.period, o.period), cmp.Compare(k.domain, o.domain), cmp.Compare(k.org, o.org),
		cmp.Compare(k.ip, o.ip), cmp.Compare(k.policy, o.policy), cmp.Compare(k.matched, o.matched),
		cmp.Compare(k.outcome, o.outcome), cmp.Compare(k.mask, o.mask))
}

// project keeps the dimensions f has.
func (k key) project(f *Family) key {
	if !f.Has(DimDomain) {
		k.domain = 0
	}
	if !f.Has(DimOrg) {
		k.org = 0
	}
	if !f.Has(DimIP) {
		k.ip = 0
	}
	if !f.Has(DimPolicy) {
		k.policy, k.matched = 0, 0
	}
	if !f.Has(DimOutcome) {
		k.outcome, k.mask = 0, 0
	}
	return k
}

type value struct {
	n           int64 // messages or reports
	first, last int32 // days with messages, month and year tables of Sources families
}

// table accumulates the rows one transaction adds to one rollup table.
type table struct {
	fam   *Family
	grain Grain
	rows  map[key]*value
}

// add reports whether the row is new.
func (t *table) add(k key, n int64, day int32) bool {
	v := t.rows[k]
	if v == nil {
		t.rows[k] = &value{n: n, first: day, last: day}
		return true
	}
	v.n += n
	v.first, v.last = min(v.first, day), max(v.last, day)
	return false
}

// accumulator holds the rows a transaction adds. Messages and Sources rows are held once, as
// cells at the finest grain (every dimension, by day: the src_full day rows), and projected to
// each table only when written (fill): a cell is one map update instead of one per table (22),
// and the rows of reports that share cells (the same sources on the same days) collapse before
// they are spread. Reports rows, one per report and table, are added to their tables directly.
type accumulator struct {
	tables []*table // every table of each family, in Families order
	cells  map[key]int64
	starts map[int32][GrainYear + 1]int32 // period starts of the cells' days
	split  []int64
	size   int // cells and Reports rows held
	max    int
}

// maxHeld is how many rows (cells and Reports rows) an accumulator holds before they are
// written; writing projects them to one table at a time, so at most as many again are held.
const maxHeld = 200_000

func newAccumulator(max int) *accumulator {
	a := &accumulator{max: max, cells: map[key]int64{}, starts: map[int32][GrainYear + 1]int32{}}
	for _, f := range Families {
		for _, g := range f.Grains() {
			a.tables = append(a.tables, &table{fam: f, grain: g, rows: map[key]*value{}})
		}
	}
	return a
}

func (a *accumulator) reset() {
	for _, t := range a.tables {
		clear(t.rows)
	}
	clear(a.cells)
	a.size = 0
}

// derived reports whether t's rows are projections of the cells (fill) rather than added.
func (t *table) derived() bool { return t.fam.Kind != Reports }

// fill sets the rows of a derived table from the cells.
func (a *accumulator) fill(t *table) {
	clear(t.rows)
	for k, n := range a.cells {
		day := k.period
		pk := k.project(t.fam)
		pk.period = a.starts[day][t.grain]
		t.add(pk, n, day)
	}
}

// addCell adds n messages of day to the cell k (k.period is the day).
func (a *accumulator) addCell(k key, n int64) {
	held, ok := a.cells[k]
	a.cells[k] = held + n
	if ok {
		return
	}
	a.size++
	if _, ok := a.starts[k.period]; !ok {
		a.starts[k.period] = startsOf(k.period)
	}
}

// cell is the finest grain: one report's messages from one source with one outcome and one
// compliance verdict.
type cell struct {
	ip      [16]byte
	outcome int8
	matched bool
}

// addReport adds one report's contribution: its messages spread over its days into every
// Messages and Sources table, and one report on its first day into every Reports table.
// flush is called between cells when the accumulator holds too many rows.
func (a *accumulator) addReport(rep report, d dims, recs []record, flush func() error) error {
	pol := PublishedPolicy{Domain: rep.Domain, P: rep.PolicyP, SP: rep.PolicySP, Pct: rep.PolicyPct, Testing: rep.Testing}
	base := key{domain: d.domains[rep.Domain], org: d.orgs[rep.OrgKey], policy: PolicyCode(rep.PolicyP)}
	cells := map[cell]int64{}
	var mask int64
	ipMasks := map[int32]int64{} // outcomes of each source's records, for rep_src
	for _, rec := range recs {
		o := Outcome(rec.Disposition, rec.DKIM, rec.SPF)
		mask |= 1 << o
		ipMasks[d.ips[rec.IP]] |= 1 << o
		if rec.Count > 0 {
			cells[cell{ip: rec.IP, outcome: o, matched: pol.Matched(rec.HeaderFrom, o)}] += rec.Count
		}
	}
	span := NewSpan(rep.DateBegin, rep.DateEnd)
	for c, n := range cells {
		if a.size > a.max {
			if err := flush(); err != nil {
				return err
			}
		}
		a.split = span.Split(n, TieKey(rep.ID, c.ip, c.outcome, c.matched), a.split)
		k := base
		k.ip, k.outcome = d.ips[c.ip], c.outcome
		if c.matched {
			k.matched = 1
		}
		for i, m := range a.split {
			if m != 0 {
				k.period = span.First + int32(i)
				a.addCell(k, m)
			}
		}
	}
	first := DayOf(rep.DateBegin)
	starts := startsOf(first)
	for _, t := range a.tables {
		if t.fam.Kind != Reports {
			continue
		}
		period := starts[t.grain]
		if !t.fam.Has(DimIP) {
			pk := key{period: period, domain: base.domain, org: base.org, mask: mask}.project(t.fam)
			if t.add(pk, 1, first) {
				a.size++
			}
			continue
		}
		for ip, m := range ipMasks {
			if t.add(key{period: period, domain: base.domain, org: base.org, ip: ip, mask: m}, 1, first) {
				a.size++
			}
		}
	}
	return nil
}

// resolveIPs finds or creates the ids of the given addresses.
func resolveIPs(ctx context.Context, tx *gorm.DB, dialect store.Dialect, ids map[[16]byte]int32) error {
	all := make([][]byte, 0, len(ids))
	for ip := range ids {
		all = append(all, ip[:])
	}
	slices.SortFunc(all, func(a, b []byte) int { return cmp.Compare(string(a), string(b)) })
	conn := tx.Statement.ConnPool
	pg := dialect == store.Postgres
	// in is the statement text and arguments for a list of addresses.
	in := func(prefix, each, sep, suffix string, part [][]byte) (string, []any) {
		if pg {
			return prefix + "$1" + suffix, []any{part}
		}
		args := make([]any, len(part))
		for i, ip := range part {
			args[i] = ip
		}
		return prefix + strings.TrimSuffix(strings.Repeat(each+sep, len(part)), sep) + suffix, args
	}
	lookup := func(part [][]byte) error {
		q, args := in("SELECT id, ip FROM rollup_ips WHERE ip IN (", "?", ",", ")", part)
		if pg {
			q, args = in("SELECT id, ip FROM rollup_ips WHERE ip = ANY(", "", "", ")", part)
		}
		rows, err := conn.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("look up rollup_ips: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int32
			var ip []byte
			if err := rows.Scan(&id, &ip); err != nil {
				return err
			}
			ids[[16]byte(ip)] = id
		}
		return rows.Err()
	}
	const chunk = 500
	for start := 0; start < len(all); start += chunk {
		part := all[start:min(start+chunk, len(all))]
		if err := lookup(part); err != nil {
			return err
		}
		var missing [][]byte
		for _, ip := range part {
			if ids[[16]byte(ip)] == 0 {
				missing = append(missing, ip)
			}
		}
		if len(missing) == 0 {
			continue
		}
		q, args := in("INSERT INTO rollup_ips (ip) VALUES ", "(?)", ",", " ON CONFLICT (ip) DO NOTHING", missing)
		if pg {
			q, args = in("INSERT INTO rollup_ips (ip) SELECT unnest(", "", "", "::bytea[]) ORDER BY 1 ON CONFLICT (ip) DO NOTHING", missing)
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("add to rollup_ips: %w", err)
		}
		if err := lookup(missing); err != nil {
			return err
		}
		for _, ip := range missing {
			if ids[[16]byte(ip)] == 0 {
				return fmt.Errorf("rollup_ips: %x has no id after insert", ip)
			}
		}
	}
	return nil
}
