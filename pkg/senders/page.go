package senders

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/vigilhq/vigil/pkg/store"
)

// rollupPage answers one page of /api/senders from the sender rollup (ok false: it cannot,
// as for Rows). A window running to the data's end is read as a top-k with bounds (topPage);
// otherwise, or when the bounds do not settle the page, the window's domain × group sums (tens
// of thousands for a year of all domains) are merged into items, counted, ranked and cut in
// the database (pageItems).
func (a *API) rollupPage(ctx context.Context, f store.Filter, page, size int) (List, bool, error) {
	if !rollupAnswers(f) {
		return List{}, false, nil
	}
	out := List{Items: []Item{}, Page: page, PageSize: size}
	domains, all, none, err := a.rollupScope(ctx, f)
	if err != nil || none {
		return out, err == nil, err
	}
	w := windowOf(f)
	p, ok, err := a.svc.rollupPlan(ctx, DimSender, domains, all, w)
	if err != nil || !ok || p.list == "" {
		return out, ok, err
	}
	if p.totals {
		items, total, _, ok, err := a.svc.topPage(ctx, p, w, (page-1)*size, size)
		if err != nil {
			return out, false, err
		}
		if ok {
			out.Items, out.Total = items, total
			return out, true, nil
		}
	}
	q, args := p.query(DimSender, w)
	out.Items, out.Total, err = a.svc.pageItems(ctx, q, args, (page-1)*size, size)
	return out, err == nil, err
}

// sumsCols names the columns of a totalsQuery or windowQuery read.
const sumsCols = "domain_id, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips"

// itemsCTE merges the group sums of sums (a totalsQuery or windowQuery read) into the items
// groupItems builds, one row per domain and item key (CTE "i"): the pending group (and any
// key without a sender_groups row, which Rows treats as pending) joins the unknown one, whose
// base domain, AS and organisation the item shows; groups without messages in the window are
// left out, as readSums leaves them. Only those two groups of each domain are aggregated: the
// others are one item each (aggregating tens of thousands of rows to merge two per domain
// cost more than reading the sums). Its three parameters follow the sums' own.
const itemsCTE = `WITH s (` + sumsCols + `) AS (%s),
g AS (SELECT s.domain_id, s.messages, s.dmarc_pass, s.dkim_pass, s.spf_pass, s.both_pass, COALESCE(s.first_day, 0) AS first_day,
	COALESCE(s.last_day, 0) AS last_day, s.ips, CASE WHEN g.id IS NULL OR g.pending THEN 1 ELSE 0 END AS pending,
	CASE WHEN g.id IS NULL OR g.key IN (CAST(? AS TEXT), CAST(? AS TEXT)) THEN 1 ELSE 0 END AS unknown,
	g.key, g.sender, g.sender_type, g.base_domain, g.asn, g.as_org
	FROM s LEFT JOIN sender_groups g ON g.id = s.key_id WHERE s.messages > 0),
i AS (SELECT domain_id, key AS ikey, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips, pending * ips AS pending_ips,
	sender, sender_type, CASE WHEN pending = 0 THEN base_domain END AS base_domain, CASE WHEN pending = 0 THEN asn END AS asn,
	CASE WHEN pending = 0 THEN as_org END AS as_org
	FROM g WHERE unknown = 0
	UNION ALL
	SELECT domain_id, CAST(? AS TEXT), CAST(SUM(messages) AS BIGINT), CAST(SUM(dmarc_pass) AS BIGINT), CAST(SUM(dkim_pass) AS BIGINT),
	CAST(SUM(spf_pass) AS BIGINT), CAST(SUM(both_pass) AS BIGINT), MIN(first_day), MAX(last_day),
	CAST(SUM(ips) AS BIGINT), CAST(SUM(pending * ips) AS BIGINT), MAX(sender), MAX(sender_type), MAX(CASE WHEN pending = 0 THEN base_domain END),
	MAX(CASE WHEN pending = 0 THEN asn END), MAX(CASE WHEN pending = 0 THEN as_org END)
	FROM g WHERE unknown = 1 GROUP BY domain_id)
`

// countItems counts the items of itemsCTE from "g": one per group but the unknown ones, one
// per domain for those. (COUNT(*) OVER () on the ranked items spooled every item: 45 of 250 ms
// for 78,288 items; "g" is already kept for the two branches of "i".)
const countItems = `SELECT COALESCE(SUM(CASE WHEN unknown = 0 THEN 1 ELSE 0 END), 0) + COUNT(DISTINCT CASE WHEN unknown = 1 THEN domain_id END) FROM g`

// pageQuery ranks the items of sums as groupItems sorts them (messages, most first, then
// domain name, label and item key, compared bytewise: COLLATE "C" on PostgreSQL, SQLite's
// default BINARY) and returns the page from the offset, each row with the number of items.
// The label is what label() shows: the sender, else the base domain, else the AS
// organisation.
func (s *Service) pageQuery(sums string) string {
	c := ""
	if s.dialect == store.Postgres {
		c = ` COLLATE "C"`
	}
	return fmt.Sprintf(itemsCTE, sums) + `SELECT COALESCE(d.name, ''), i.sender, COALESCE(i.sender_type, ''), i.base_domain, i.asn, i.as_org,
	i.messages, i.dmarc_pass, i.dkim_pass, i.spf_pass, i.both_pass, i.first_day, i.last_day, i.ips, i.pending_ips, (` + countItems + `)
	FROM i LEFT JOIN rollup_domains d ON d.id = i.domain_id
	ORDER BY i.messages DESC, COALESCE(d.name, '')` + c + `,
	COALESCE(NULLIF(i.sender, ''), NULLIF(i.base_domain, ''), NULLIF(i.as_org, ''), '')` + c + `, i.ikey` + c + `
	LIMIT ? OFFSET ?`
}

// pageItems reads the page [offset, offset+limit) of the items of sums (a totalsQuery or
// windowQuery read with its args) and the number of items.
func (s *Service) pageItems(ctx context.Context, sums string, args []any, offset, limit int) ([]Item, int64, error) {
	return s.pageItemsIn(ctx, s.sqlDB(), sums, args, offset, limit)
}

// pageItemsIn is pageItems on db (the top-k's transaction).
func (s *Service) pageItemsIn(ctx context.Context, db reader, sums string, args []any, offset, limit int) ([]Item, int64, error) {
	args = append(args[:len(args):len(args)], PendingKey, UnknownKey, UnknownKey)
	rows, err := db.QueryContext(ctx, s.bind(s.pageQuery(sums)), append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("senders: page: %w", err)
	}
	defer rows.Close()
	items := []Item{}
	var total int64
	for rows.Next() {
		var it Item
		var sender, base, org sql.NullString
		var asn sql.NullInt64
		var first, last int32
		if err := rows.Scan(&it.Domain, &sender, &it.SenderType, &base, &asn, &org, &it.Messages, &it.DMARCPassMessages, &it.DKIMAlignedMessages,
			&it.SPFAlignedMessages, &it.Alignment.Both, &first, &last, &it.IPs, &it.PendingIPs, &total); err != nil {
			return nil, 0, fmt.Errorf("senders: page: %w", err)
		}
		if it.SenderType == "" {
			it.SenderType = TypeUnknown
		}
		it.Sender, it.BaseDomain, it.ASN, it.ASOrg = optStr(sender.String), optStr(base.String), optInt(asn.Int64), optStr(org.String)
		finish(&it, first, last)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("senders: page: %w", err)
	}
	if len(items) == 0 && offset > 0 {
		// A page past the end: the count comes alone.
		q := fmt.Sprintf(itemsCTE, sums) + countItems
		if err := db.QueryRowContext(ctx, s.bind(q), args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("senders: page: count: %w", err)
		}
	}
	return items, total, nil
}
