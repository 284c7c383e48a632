package senders

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/pkg/store"
)

// A page of /api/senders for a window running to the data's end (the totalsQuery shape) is
// read as a top-k with bounds rather than by ranking every domain × group item (about 200,000
// at 10M records, for a page of 50):
//
//   - an item's messages in such a window are its total less the rows before the window, so
//     they never exceed its all-time total (the bound of a known item, one group);
//   - the unknown item of a domain merges its pending and unknown groups: its bound is the sum
//     of their totals;
//   - the candidates are the M groups with the largest totals (migration 23) and the unknown
//     items with the largest bounds; their exact window sums are ranked as pageQuery ranks;
//   - every item not among them has at most B messages: the greatest total of the groups not
//     read, or bound of the unknown items not taken. The ranked candidates with more than B
//     messages (strictly: an outsider tying with B could rank anywhere among equals) are the
//     first items of the whole order; when they reach the page's end the page is exact, else M
//     doubles, and past topMax the whole order is ranked as before (pageItems).
//
// Keys without a sender_groups row (which pageQuery merges into the unknown item, and which
// the unknown item's bound would miss) cannot occur: the rollup's keys are sender_groups ids
// (a source's group, else the pending group, created first) and groups are never deleted.
// Should one appear anyway (a key past the greatest group id, or a candidate without its row),
// the page falls back to the full ranking.

// topFirst and topMax bound the number of groups the top-k reads: first topFirst × the rows
// up to the page's end (at least topMin), doubled up to topMax rows. A page deeper than that
// is ranked in full at once (at 1M records, page 100 of 50 read as a top-k of 20,000
// candidates took 0.6 s against 0.14 s for the full ranking: the candidates' pairs are
// spelled out in the statement).
const (
	topFirst = 4
	topMin   = 64
	topMax   = 4096
)

// topLimits are the candidate counts of one page: the first and the greatest.
type topLimits struct{ first, max int }

func (s *Service) topLimits(need int) topLimits {
	if s.topTest != nil {
		return *s.topTest
	}
	return topLimits{first: max(topMin, topFirst*need), max: topMax}
}

// topStats says how a page was read (for tests and figures): the candidate counts tried, and
// whether it fell back to the full ranking.
type topStats struct {
	tries    []int
	fallback bool
}

// topPage is the page [offset, offset+limit) of the sender items of the domains of list over
// w (a window running to the data's end: p.totals) and the number of items, or ok false when
// the bounds do not settle it within topMax candidates (the caller ranks everything).
func (s *Service) topPage(ctx context.Context, p plan, w window, offset, limit int) ([]Item, int64, topStats, bool, error) {
	var st topStats
	if s.topLimits(offset+limit).first > s.topLimits(offset+limit).max {
		st.fallback = true
		return nil, 0, st, false, nil
	}
	// One snapshot for the statements below, as the full ranking's one statement has: a domain
	// rebuilt between them would mix its old and new rows.
	tx, err := s.sqlDB().BeginTx(ctx, s.snapshot())
	if err != nil {
		return nil, 0, st, false, fmt.Errorf("senders: top-k: %w", err)
	}
	defer tx.Rollback()
	var db reader = tx
	if ok, err := s.keysGrouped(ctx, db); err != nil || !ok {
		st.fallback = true
		return nil, 0, st, false, err
	}
	unk, err := s.unknownIDs(ctx, db)
	if err != nil {
		return nil, 0, st, false, err
	}
	total, err := s.topCount(ctx, db, p, w, unk)
	if err != nil {
		return nil, 0, st, false, err
	}
	if int64(offset) >= total {
		return []Item{}, total, st, true, nil
	}
	need := int(min(int64(offset+limit), total))
	bounds, err := s.unknownBounds(ctx, db, p.list, unk)
	if err != nil {
		return nil, 0, st, false, err
	}
	lim := s.topLimits(need)
	for m := lim.first; m <= lim.max; m *= 2 {
		st.tries = append(st.tries, m)
		items, done, err := s.topTry(ctx, db, p, w, unk, bounds, m, need)
		if err != nil {
			return nil, 0, st, false, err
		}
		if items == nil && done {
			break // a key without a group: rank everything
		}
		if done {
			return items[offset:need], total, st, true, nil
		}
	}
	st.fallback = true
	return nil, 0, st, false, nil
}

// domainBound is a domain's unknown item's bound: the sum of its pending and unknown groups'
// totals.
type domainBound struct {
	domain   int64
	messages int64
}

// unknownIDs are the ids of the groups merged into a domain's unknown item (pending, unknown);
// -1 stands for one not created yet.
func (s *Service) unknownIDs(ctx context.Context, db reader) ([]int64, error) {
	rows, err := db.QueryContext(ctx, s.bind("SELECT id FROM sender_groups WHERE dim = ? AND key IN (?, ?)"), DimSender, PendingKey, UnknownKey)
	if err != nil {
		return nil, fmt.Errorf("senders: unknown groups: %w", err)
	}
	defer rows.Close()
	ids := []int64{-1}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("senders: unknown groups: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// unknownBounds are the bounds of the domains' unknown items, greatest first.
func (s *Service) unknownBounds(ctx context.Context, db reader, list string, unk []int64) ([]domainBound, error) {
	rows, err := db.QueryContext(ctx, "SELECT domain_id, CAST(SUM(messages) AS BIGINT) FROM rollup_sender_total WHERE dim = "+strconv.Itoa(DimSender)+
		" AND key_id IN ("+int64List(unk)+") AND domain_id IN ("+list+") GROUP BY domain_id")
	if err != nil {
		return nil, fmt.Errorf("senders: unknown bounds: %w", err)
	}
	defer rows.Close()
	var out []domainBound
	for rows.Next() {
		var b domainBound
		if err := rows.Scan(&b.domain, &b.messages); err != nil {
			return nil, fmt.Errorf("senders: unknown bounds: %w", err)
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(x, y domainBound) int { return cmp.Compare(y.messages, x.messages) })
	return out, rows.Err()
}

// topCount counts the items with messages in w without ranking them. A group has messages in
// a window running to the data's end iff its total exceeds its rows before the window; only
// groups with a last day in the window can (the others lie wholly before it). So: the known
// groups with a last day in the window and messages, less those whose rows before the window
// hold all their messages (a day can hold a row of 0 messages: a report's count of 0, or a
// count spread over more days than it has messages), plus the domains whose pending and
// unknown groups have messages in the window together.
func (s *Service) topCount(ctx context.Context, db reader, p plan, w window, unk []int64) (int64, error) {
	d := strconv.Itoa(DimSender)
	u := int64List(unk)
	var q string
	var args []any
	if !w.hasFrom {
		q = "SELECT (SELECT COUNT(*) FROM rollup_sender_total WHERE dim = " + d + " AND domain_id IN (" + p.list + ") AND key_id NOT IN (" + u +
			") AND messages > 0) + (SELECT COUNT(DISTINCT domain_id) FROM rollup_sender_total WHERE dim = " + d + " AND domain_id IN (" + p.list +
			") AND key_id IN (" + u + ") AND messages > 0)"
	} else {
		// WITH rather than a derived table with column names: SQLite has no "AS x (cols)".
		before := " AND domain_id IN (" + p.list + ")"
		if p.every {
			before = ""
		}
		known, kargs := beforeQuery(DimSender, before, w)
		unknown, uargs := totalsWhere(DimSender, " AND {t}domain_id IN ("+p.list+") AND {t}key_id IN ("+u+")", " AND key_id IN ("+u+")"+before, w)
		q = "SELECT (SELECT COUNT(*) FROM rollup_sender_total WHERE dim = " + d + " AND domain_id IN (" + p.list + ") AND key_id NOT IN (" + u +
			") AND last_day >= ? AND messages > 0) - (SELECT COUNT(*) FROM (" + known + ") b JOIN rollup_sender_total t ON t.domain_id = b.domain_id AND t.dim = " + d +
			" AND t.key_id = b.key_id WHERE t.domain_id IN (" + p.list + ") AND t.key_id NOT IN (" + u + ") AND t.last_day >= ? AND t.messages > 0 AND t.messages <= b.messages)" +
			" + (WITH x (" + sumsCols + ") AS (" + unknown + ") SELECT COUNT(DISTINCT domain_id) FROM x WHERE messages > 0)"
		args = append(append(append(append(args, w.from), kargs...), w.from), uargs...)
	}
	var n int64
	if err := db.QueryRowContext(ctx, s.bind(q), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("senders: count items: %w", err)
	}
	return n, nil
}

// topTry ranks the candidates of m groups and says whether their first need items are the
// first need items of all (done); done without items: a candidate key has no sender_groups
// row, give up.
func (s *Service) topTry(ctx context.Context, db reader, p plan, w window, unk []int64, bounds []domainBound, m, need int) ([]Item, bool, error) {
	d := strconv.Itoa(DimSender)
	rows, err := db.QueryContext(ctx, s.bind("SELECT domain_id, key_id, messages FROM rollup_sender_total WHERE dim = "+d+" AND domain_id IN ("+p.list+
		") ORDER BY messages DESC LIMIT ?"), m)
	if err != nil {
		return nil, false, fmt.Errorf("senders: top groups: %w", err)
	}
	var pairs []string
	var keys, doms []int64
	n := 0
	var last int64
	for rows.Next() {
		var dom, key int64
		if err := rows.Scan(&dom, &key, &last); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("senders: top groups: %w", err)
		}
		n++
		if !slices.Contains(unk, key) {
			pairs = append(pairs, "("+strconv.FormatInt(dom, 10)+","+strconv.FormatInt(key, 10)+")")
			keys, doms = append(keys, key), append(doms, dom)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("senders: top groups: %w", err)
	}
	// outside bounds the messages of every item not among the candidates.
	var outside int64
	if n == m {
		outside = last // every group not read has a total of at most this
	}
	taken := 0
	for _, b := range bounds {
		if taken == m {
			outside = max(outside, b.messages)
			break
		}
		taken++
		doms = append(doms, b.domain)
		for _, k := range unk[1:] {
			pairs = append(pairs, "("+strconv.FormatInt(b.domain, 10)+","+strconv.FormatInt(k, 10)+")")
		}
	}
	if len(pairs) == 0 {
		return nil, false, nil
	}
	if ok, err := s.groupsExist(ctx, db, keys); err != nil || !ok {
		return nil, err == nil, err // nil items and done: give up
	}
	// The rows before the window are read for the candidates' domains and keys (a superset of
	// the pairs, matched to them by the join): one list of pairs in the statement, not six.
	slices.Sort(doms)
	in := " AND ({t}domain_id, {t}key_id) IN (VALUES " + strings.Join(pairs, ",") + ")"
	before := " AND domain_id IN (" + int64List(slices.Compact(doms)) + ") AND key_id IN (" + int64List(append(slices.Clone(keys), unk...)) + ")"
	sums, args := totalsWhere(DimSender, in, before, w)
	items, _, err := s.pageItemsIn(ctx, db, sums, args, 0, need)
	if err != nil {
		return nil, false, err
	}
	exact := 0
	for exact < len(items) && items[exact].Messages > outside {
		exact++
	}
	if exact >= need || (outside <= 0 && len(items) >= need) {
		return items, true, nil
	}
	return nil, false, nil
}

// groupsExist says whether every key has a sender_groups row (see the package's top-k notes).
func (s *Service) groupsExist(ctx context.Context, db reader, keys []int64) (bool, error) {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if len(keys) == 0 {
		return true, nil
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sender_groups WHERE id IN ("+int64List(keys)+")").Scan(&n); err != nil {
		return false, fmt.Errorf("senders: top groups: %w", err)
	}
	return n == len(keys), nil
}

// keysGrouped says whether no key of the sender totals lies past the last sender_groups id (a
// cheap guard, through the key index of migration 23, that the rollup was built from these
// groups; see the package's top-k notes).
func (s *Service) keysGrouped(ctx context.Context, db reader) (bool, error) {
	var past int
	err := db.QueryRowContext(ctx, "SELECT CASE WHEN (SELECT MAX(key_id) FROM rollup_sender_total WHERE dim = "+strconv.Itoa(DimSender)+
		") > (SELECT COALESCE(MAX(id), 0) FROM sender_groups) THEN 1 ELSE 0 END").Scan(&past)
	if err != nil {
		return false, fmt.Errorf("senders: top groups: %w", err)
	}
	return past == 0, nil
}

// reader runs the top-k's statements: a transaction holding one snapshot.
type reader interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// snapshot is a read-only transaction that sees one state of the database throughout:
// REPEATABLE READ on PostgreSQL (READ COMMITTED, its default, takes a snapshot per statement);
// an SQLite transaction reads one snapshot from its first read on. Read-only matters on
// SQLite too: the store begins other transactions IMMEDIATE, taking the one write lock.
func (s *Service) snapshot() *sql.TxOptions {
	if s.dialect == store.Postgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return &sql.TxOptions{ReadOnly: true}
}
