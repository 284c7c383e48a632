package senders

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/pkg/store"
)

// Dimensions of the sender rollup (sender_groups.dim, rollup_sender_*.dim).
const (
	DimSender  = 1 // a sender group: what /api/senders lists
	DimCountry = 2 // a country: what the country map lists
)

// PendingKey is the group of sources not enriched yet; UnknownKey the group of enriched
// sources with neither a known sender, a PTR base domain nor an AS. Both make the one item
// without a name.
const (
	PendingKey = "?p"
	UnknownKey = "?"
)

// group is a sender group: the key sources are grouped under and what it shows.
type group struct {
	Key        string
	Sender     string // "" when not a named service
	Type       string
	BaseDomain string
	ASN        int64
	ASOrg      string
	Pending    bool
}

// itemKey is the /api/senders item a group belongs to: the pending and the unknown sources
// make one.
func (g group) itemKey() string {
	if g.Key == PendingKey {
		return UnknownKey
	}
	return g.Key
}

// classify names the group of one enriched source: a known service, else the base domain of
// its PTR name, else its AS, else unknown.
func classify(cat *Catalog, base string, asn int64, org string, residential bool) group {
	s, known := cat.Match(base, uint32(asn), residential)
	g := group{Type: s.Type, BaseDomain: base, ASN: asn, ASOrg: org}
	switch {
	case known:
		g.Key, g.Sender = "s:"+s.Name, s.Name
	case base != "":
		g.Key = "d:" + base
	case asn != 0:
		g.Key = "a:" + strconv.FormatInt(asn, 10)
	default:
		g.Key = UnknownKey
	}
	if !known {
		g.Type = TypeUnknown
	}
	return g
}

// syncChunk bounds the sources one sync statement reads or writes.
const syncChunk = 500

// SyncStats counts what Sync did.
type SyncStats struct {
	Sources int `json:"sources"` // derived again
	Changed int `json:"changed"` // whose group or country changed
}

// Sync derives sender_sources for every known source whose enrichment changed since it was
// last derived (or that has none yet, or was marked by a mapping change), and marks the
// domains of sources whose group or country changed so their rollup rows are rebuilt.
func (s *Service) Sync(ctx context.Context) (SyncStats, error) {
	var st SyncStats
	cat, err := s.Catalog(ctx)
	if err != nil {
		return st, err
	}
	// Keyset pages over rollup_ips: a page never reads again the sources before it.
	var after int64
	for {
		n, changed, last, err := s.syncChunk(ctx, cat, after)
		st.Sources += n
		st.Changed += changed
		if err != nil || n < syncChunk {
			return st, err
		}
		after = last
	}
}

type sourceRow struct {
	IPID        int64
	Enriched    bool
	BaseDomain  sql.NullString
	ASN         sql.NullInt64
	ASOrg       sql.NullString
	Residential sql.NullBool
	Country     sql.NullString
	CountryName sql.NullString
	UpdatedAt   sql.NullInt64
	OldGroup    sql.NullInt64
	OldCountry  sql.NullInt64
}

const sourceCols = `SELECT i.id, e.ip IS NOT NULL, e.base_domain, e.asn, e.as_org, e.residential, e.country, e.country_name, e.updated_at,
	ss.group_id, ss.country_id FROM rollup_ips i LEFT JOIN enrich_ips e ON e.ip = i.ip LEFT JOIN sender_sources ss ON ss.ip_id = i.id`

// syncChunk derives one chunk of stale sources in one transaction.
func (s *Service) syncChunk(ctx context.Context, cat *Catalog, after int64) (n, changed int, last int64, err error) {
	return s.syncWhere(ctx, cat, ` WHERE i.id > ? AND (ss.ip_id IS NULL OR ss.enriched_at < 0 OR (e.ip IS NOT NULL AND ss.enriched_at <> e.updated_at)) ORDER BY i.id LIMIT ?`, after, syncChunk)
}

// SyncIPs derives the sender_sources rows of the given known sources now (the enrich:ips
// handler calls it after writing their cache entries, so the next question groups them).
func (s *Service) SyncIPs(ctx context.Context, ips []netip.Addr) (SyncStats, error) {
	var st SyncStats
	if len(ips) == 0 {
		return st, nil
	}
	cat, err := s.Catalog(ctx)
	if err != nil {
		return st, err
	}
	for lo := 0; lo < len(ips); lo += syncChunk {
		part := ips[lo:min(lo+syncChunk, len(ips))]
		args := make([]any, len(part))
		for i, ip := range part {
			b := ip.Unmap().As16()
			args[i] = b[:]
		}
		n, changed, _, err := s.syncWhere(ctx, cat, " WHERE i.ip IN ("+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+")", args...)
		st.Sources += n
		st.Changed += changed
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// syncWhere derives the sources the condition selects, in one transaction.
func (s *Service) syncWhere(ctx context.Context, cat *Catalog, where string, args ...any) (n, changed int, last int64, err error) {
	tx, unlock, err := s.begin(ctx, nil)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("senders: sync: %w", err)
	}
	defer unlock()
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.bind(sourceCols+where), args...)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("senders: sync: %w", err)
	}
	var srcs []sourceRow
	for rows.Next() {
		var r sourceRow
		if err := rows.Scan(&r.IPID, &r.Enriched, &r.BaseDomain, &r.ASN, &r.ASOrg, &r.Residential, &r.Country, &r.CountryName, &r.UpdatedAt, &r.OldGroup, &r.OldCountry); err != nil {
			rows.Close()
			return 0, 0, 0, fmt.Errorf("senders: sync: %w", err)
		}
		srcs = append(srcs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("senders: sync: %w", err)
	}
	if len(srcs) == 0 {
		return 0, 0, 0, nil
	}
	ids := newGroupIDs(tx, s)
	var changedIPs []int64
	touched := map[int64]bool{}
	vals := make([]any, 0, len(srcs)*9)
	for _, r := range srcs {
		g := group{Key: PendingKey, Type: TypeUnknown, Pending: true}
		if r.Enriched {
			g = classify(cat, r.BaseDomain.String, r.ASN.Int64, r.ASOrg.String, r.Residential.Bool)
		}
		gid, err := ids.get(ctx, DimSender, g.Key, g, "")
		if err != nil {
			return 0, 0, 0, err
		}
		cid, err := ids.get(ctx, DimCountry, r.Country.String, group{}, r.CountryName.String)
		if err != nil {
			return 0, 0, 0, err
		}
		if !r.OldGroup.Valid || r.OldGroup.Int64 != gid || r.OldCountry.Int64 != cid {
			changedIPs = append(changedIPs, r.IPID)
		}
		touched[gid] = true
		if r.OldGroup.Valid {
			touched[r.OldGroup.Int64] = true
		}
		enrichedAt := r.UpdatedAt.Int64
		if !r.Enriched {
			enrichedAt = 0
		}
		var sender any
		if g.Sender != "" {
			sender = strings.ToLower(g.Sender)
		}
		vals = append(vals, r.IPID, gid, cid, sender, nullStr(r.Country.String), nullInt(r.ASN.Int64), nullStr(r.BaseDomain.String),
			nullStr(r.ASOrg.String), enrichedAt)
	}
	// Rows of 9 values, 100 to a statement: far below both dialects' parameter limits.
	const perStmt = 100
	for lo := 0; lo < len(srcs); lo += perStmt {
		hi := min(lo+perStmt, len(srcs))
		q := `INSERT INTO sender_sources (ip_id, group_id, country_id, sender, country, asn, base_domain, as_org, enriched_at) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?),", hi-lo), ",") +
			` ON CONFLICT (ip_id) DO UPDATE SET group_id = excluded.group_id, country_id = excluded.country_id,
			sender = excluded.sender, country = excluded.country, asn = excluded.asn, base_domain = excluded.base_domain, as_org = excluded.as_org,
			enriched_at = excluded.enriched_at`
		if _, err := tx.ExecContext(ctx, s.bind(q), vals[lo*9:hi*9]...); err != nil {
			return 0, 0, 0, fmt.Errorf("senders: sync: write sources: %w", err)
		}
	}
	if err := s.bumpVersions(ctx, tx, changedIPs); err != nil {
		return 0, 0, 0, err
	}
	if err := s.describeGroups(ctx, tx, touched); err != nil {
		return 0, 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, 0, fmt.Errorf("senders: sync: commit: %w", err)
	}
	return len(srcs), len(changedIPs), srcs[len(srcs)-1].IPID, nil
}

// bumpVersions marks the domains the changed sources sent for, and all domains (0), stale.
func (s *Service) bumpVersions(ctx context.Context, tx *sql.Tx, ipIDs []int64) error {
	if len(ipIDs) == 0 {
		return nil
	}
	list := int64List(ipIDs)
	_, err := tx.ExecContext(ctx, `INSERT INTO sender_versions (domain_id, version)
		SELECT DISTINCT domain_id, 1 FROM rollup_ip_domain_year WHERE ip_id IN (`+list+`)
		UNION SELECT 0, 1 WHERE 1=1
		ON CONFLICT (domain_id) DO UPDATE SET version = sender_versions.version + 1`)
	if err != nil {
		return fmt.Errorf("senders: sync: mark domains: %w", err)
	}
	return nil
}

// describeGroups sets what each touched sender group shows: the base domain, AS and AS
// organisation all its sources share (none when they differ).
func (s *Service) describeGroups(ctx context.Context, tx *sql.Tx, touched map[int64]bool) error {
	ids := make([]int64, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	rows, err := tx.QueryContext(ctx, `SELECT group_id, COUNT(*), COUNT(base_domain), COUNT(DISTINCT base_domain), MIN(base_domain),
		COUNT(asn), COUNT(DISTINCT asn), MIN(asn), MIN(as_org) FROM sender_sources WHERE group_id IN (`+int64List(ids)+`) GROUP BY group_id`)
	if err != nil {
		return fmt.Errorf("senders: sync: describe groups: %w", err)
	}
	type desc struct {
		id         int64
		base, org  any
		asn        any
		n, nb, ndb int64
		na, nda    int64
	}
	var ds []desc
	for rows.Next() {
		var d desc
		var base, org sql.NullString
		var asn sql.NullInt64
		if err := rows.Scan(&d.id, &d.n, &d.nb, &d.ndb, &base, &d.na, &d.nda, &asn, &org); err != nil {
			rows.Close()
			return fmt.Errorf("senders: sync: describe groups: %w", err)
		}
		if d.nb == d.n && d.ndb == 1 {
			d.base = base.String
		}
		if d.na == d.n && d.nda == 1 {
			d.asn, d.org = asn.Int64, nullStr(org.String)
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("senders: sync: describe groups: %w", err)
	}
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, s.bind("UPDATE sender_groups SET base_domain = ?, asn = ?, as_org = ? WHERE id = ?"), d.base, d.asn, d.org, d.id); err != nil {
			return fmt.Errorf("senders: sync: describe group %d: %w", d.id, err)
		}
	}
	return nil
}

// groupIDs finds or creates group ids within a sync transaction.
type groupIDs struct {
	tx   *sql.Tx
	s    *Service
	seen map[[2]string]int64
}

func newGroupIDs(tx *sql.Tx, s *Service) *groupIDs {
	return &groupIDs{tx: tx, s: s, seen: map[[2]string]int64{}}
}

func (g *groupIDs) get(ctx context.Context, dim int, key string, gr group, name string) (int64, error) {
	k := [2]string{strconv.Itoa(dim), key}
	if id, ok := g.seen[k]; ok {
		return id, nil
	}
	var sender any
	if gr.Sender != "" {
		sender = gr.Sender
	}
	typ := gr.Type
	if typ == "" {
		typ = TypeUnknown
	}
	// A group's base domain, AS and AS organisation are set by describeGroups; unknown
	// groups keyed by base domain or AS start with theirs.
	var base, asn any
	switch {
	case strings.HasPrefix(key, "d:") && dim == DimSender:
		base = gr.BaseDomain
	case strings.HasPrefix(key, "a:") && dim == DimSender:
		asn = gr.ASN
	}
	_, err := g.tx.ExecContext(ctx, g.s.bind(`INSERT INTO sender_groups (dim, key, sender, sender_type, base_domain, asn, name, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (dim, key) DO NOTHING`), dim, key, sender, typ, base, asn, nullStr(name), gr.Pending)
	if err != nil {
		return 0, fmt.Errorf("senders: group %q: %w", key, err)
	}
	var id int64
	if err := g.tx.QueryRowContext(ctx, g.s.bind("SELECT id FROM sender_groups WHERE dim = ? AND key = ?"), dim, key).Scan(&id); err != nil {
		return 0, fmt.Errorf("senders: group %q: %w", key, err)
	}
	if dim == DimCountry && name != "" {
		// The country's name as the latest database spells it.
		if _, err := g.tx.ExecContext(ctx, g.s.bind("UPDATE sender_groups SET name = ? WHERE id = ? AND (name IS NULL OR name <> ?)"), name, id, name); err != nil {
			return 0, fmt.Errorf("senders: group %q: %w", key, err)
		}
	}
	g.seen[k] = id
	return id, nil
}

// Resync marks every source to be derived again (after a mapping change: a source may now be
// another sender) and derives them.
func (s *Service) Resync(ctx context.Context) (SyncStats, error) {
	unlock := s.st.LockWrites()
	_, err := s.sqlDB().ExecContext(ctx, "UPDATE sender_sources SET enriched_at = -1")
	unlock()
	if err != nil {
		return SyncStats{}, fmt.Errorf("senders: resync: %w", err)
	}
	return s.Sync(ctx)
}

// begin starts a write transaction under the store's write lock (SQLite: one writer per
// process, queued rather than retried through busy_timeout); unlock releases the lock after the
// transaction ends (defer it before the Rollback).
func (s *Service) begin(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, func(), error) {
	unlock := s.st.LockWrites()
	tx, err := s.sqlDB().BeginTx(ctx, opts)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return tx, unlock, nil
}

func (s *Service) sqlDB() *sql.DB {
	db, _ := s.db.DB()
	return db
}

// bind turns ? placeholders into PostgreSQL's $n (the queries here go to database/sql: gorm
// would expand a []byte argument into a list).
func (s *Service) bind(q string) string {
	if s.dialect != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func nullStr(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func int64List(ids []int64) string {
	if len(ids) == 0 {
		return "NULL"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}
