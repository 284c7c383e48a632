package analytics

import (
	"context"
	"database/sql"
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// GroupQuery asks for the sources under a filter summed by keys other packages own (the
// enrichment of an address: its sender, its country), so they reuse the window planning and
// filters here instead of scanning records.
type GroupQuery struct {
	// Join is joined to the source's address row, "rollup_ips i" (e.g. "LEFT JOIN enrich_ips
	// e ON e.ip = i.ip"); Keys are SQL expressions over those tables, grouped by and returned
	// as text (NULL: not valid).
	Join string
	Keys []string
	// ByDomain groups per policy domain as well.
	ByDomain bool
}

// SourceGroup is one group's sums. DKIMPass and SPFPass are the messages whose
// policy-evaluated (aligned) DKIM / SPF passed, BothPass those where both did; IPs counts
// the distinct sources; First and Last are UTC day numbers (rollup.DayTime).
type SourceGroup struct {
	Domain    string
	Keys      []sql.NullString
	Messages  int64
	DMARCPass int64
	DKIMPass  int64
	SPFPass   int64
	BothPass  int64
	IPs       int64
	First     int32
	Last      int32
}

// SourceGroups sums the messages of every source under f by the query's keys. The per-source
// sums come from the smallest rollup family with sources and outcomes (and domains when
// grouped by them), then each source is joined to its address row once.
func (a *API) SourceGroups(ctx context.Context, f store.Filter, g GroupQuery) ([]SourceGroup, error) {
	e := a.eng
	s, err := e.resolve(ctx, f)
	if err != nil || s.none {
		return nil, err
	}
	need := rollup.DimIP | rollup.DimOutcome
	if g.ByDomain {
		need |= rollup.DimDomain
	}
	fam, err := pick(rollup.Messages, s, need)
	if err != nil {
		return nil, err
	}
	dom, sdom := "", ""
	if g.ByDomain {
		dom, sdom = "domain_id, ", "s.domain_id, "
	}
	both := func(o int8) bool { return rollup.DKIMPass(o) && rollup.SPFPass(o) }
	q := e.newQuery().w("WITH src AS (SELECT " + dom + "ip_id, SUM(messages) AS m, " + caseSum(rollup.DMARCPass) + " AS dp, " +
		caseSum(rollup.DKIMPass) + " AS kp, " + caseSum(rollup.SPFPass) + " AS sp, " + caseSum(both) + " AS bp, MIN(first_day) AS fd, MAX(last_day) AS ld FROM ")
	cols := []string{"ip_id", "outcome", "messages", "first_day", "last_day"}
	if g.ByDomain {
		cols = append([]string{"domain_id"}, cols...)
	}
	e.rows(q, fam, s, cols, monthsExact, nil)
	q.w(" GROUP BY " + dom + "ip_id HAVING SUM(messages) > 0) SELECT " + sdom)
	for _, k := range g.Keys {
		q.w(k + ", ")
	}
	q.w("SUM(s.m), SUM(s.dp), SUM(s.kp), SUM(s.sp), SUM(s.bp), COUNT(*), MIN(s.fd), MAX(s.ld) FROM src s JOIN rollup_ips i ON i.id = s.ip_id " + g.Join)
	if grp := strings.TrimSuffix(sdom+strings.Join(g.Keys, ", "), ", "); grp != "" {
		q.w(" GROUP BY " + grp)
	}
	var out []SourceGroup
	var domIDs []int32
	err = e.each(ctx, q, func(r *sql.Rows) error {
		var sg SourceGroup
		var did int32
		sg.Keys = make([]sql.NullString, len(g.Keys))
		dst := make([]any, 0, len(g.Keys)+9)
		if g.ByDomain {
			dst = append(dst, &did)
		}
		for i := range sg.Keys {
			dst = append(dst, &sg.Keys[i])
		}
		dst = append(dst, &sg.Messages, &sg.DMARCPass, &sg.DKIMPass, &sg.SPFPass, &sg.BothPass, &sg.IPs, &sg.First, &sg.Last)
		if err := r.Scan(dst...); err != nil {
			return err
		}
		out = append(out, sg)
		domIDs = append(domIDs, did)
		return nil
	})
	if err != nil || !g.ByDomain {
		return out, err
	}
	names, err := e.domainNames(ctx, domIDs)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Domain = names[domIDs[i]]
	}
	return out, nil
}

// SourceInfo is what enrichment knows about a source, added to /api/rollup/sources items.
// Answers are cached per domain generation, which enrichment does not bump: a source
// enriched after an answer was cached shows its fields once the answer expires
// (VIGIL_CACHE_TTL).
type SourceInfo struct {
	PTR        *string `json:"ptr"`
	BaseDomain *string `json:"base_domain"`
	Sender     *string `json:"sender"`
	SenderType *string `json:"sender_type"`
	ASN        *int64  `json:"asn"`
	ASOrg      *string `json:"as_org"`
	Country    *string `json:"country"`
}

// describeSources fills the enrichment fields of a page of sources.
func (a *API) describeSources(ctx context.Context, items []Source) error {
	if a.describe == nil || len(items) == 0 {
		return nil
	}
	ips := make([]netip.Addr, 0, len(items))
	for _, it := range items {
		if ip, err := netip.ParseAddr(it.SourceIP); err == nil {
			ips = append(ips, ip)
		}
	}
	infos, err := a.describe(ctx, ips)
	if err != nil {
		return err
	}
	for i := range items {
		if ip, err := netip.ParseAddr(items[i].SourceIP); err == nil {
			in := infos[ip]
			it := &items[i]
			it.PTR, it.BaseDomain, it.Sender, it.SenderType, it.ASN, it.ASOrg, it.Country = in.PTR, in.BaseDomain, in.Sender, in.SenderType, in.ASN, in.ASOrg, in.Country
		}
	}
	return nil
}
