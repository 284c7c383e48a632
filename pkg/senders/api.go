package senders

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// API serves /api/senders and the mapping endpoints.
type API struct {
	svc   *Service
	an    *analytics.API
	audit *audit.Log
	now   func() time.Time
}

// WithAudit records mapping changes in the audit log.
func (a *API) WithAudit(l *audit.Log) *API {
	a.audit = l
	return a
}

// NewAPI builds the endpoints on the service and the analytics API (for the sums).
func NewAPI(svc *Service, an *analytics.API) *API { return &API{svc: svc, an: an, now: time.Now} }

// Routes lists the endpoints; a nil *API still lists them.
func (a *API) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/senders", Role: auth.Viewer, Handler: a.list},
		{Method: http.MethodGet, Path: "/api/senders/mappings", Role: auth.Viewer, Handler: a.listMappings},
		{Method: http.MethodPost, Path: "/api/senders/mappings", Role: auth.Admin, Handler: a.putMapping},
		{Method: http.MethodDelete, Path: "/api/senders/mappings/:id", Role: auth.Admin, Handler: a.deleteMapping},
	}
}

// Alignment is how a sender's messages authenticate: both aligned, DKIM only, SPF only,
// neither.
type Alignment struct {
	Both     int64 `json:"both"`
	DKIMOnly int64 `json:"dkim_only"`
	SPFOnly  int64 `json:"spf_only"`
	Neither  int64 `json:"neither"`
}

// Item is one sender of one policy domain (DESIGN.md fields first).
type Item struct {
	Domain              string    `json:"domain"`
	Sender              *string   `json:"sender"`
	SenderType          string    `json:"sender_type"`
	BaseDomain          *string   `json:"base_domain"`
	ASN                 *int64    `json:"asn"`
	ASOrg               *string   `json:"as_org"`
	Messages            int64     `json:"messages"`
	IPs                 int64     `json:"ips"`
	DMARCPassMessages   int64     `json:"dmarc_pass_messages"`
	DMARCPassRate       *float64  `json:"dmarc_pass_rate"`
	DKIMAlignedMessages int64     `json:"dkim_aligned_messages"`
	SPFAlignedMessages  int64     `json:"spf_aligned_messages"`
	Alignment           Alignment `json:"alignment"`
	FirstSeen           string    `json:"first_seen"`
	LastSeen            string    `json:"last_seen"`
	PendingIPs          int64     `json:"enrichment_pending_ips"`
	Advice              []Advice  `json:"advice"`
}

// List is the list envelope (DESIGN.md).
type List struct {
	Items    []Item `json:"items"`
	Total    int64  `json:"total"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func (a *API) list(c echo.Context) error {
	f, err := apiparams.Filter(c, a.now())
	if err != nil {
		return err
	}
	page, err := apiparams.Int(c, "page", 1, 1, 1_000_000)
	if err != nil {
		return err
	}
	size, err := apiparams.Int(c, "page_size", defaultPageSize, 1, maxPageSize)
	if err != nil {
		return err
	}
	out, err := a.Page(c.Request().Context(), f, page, size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// Page is one page of /api/senders under f. From a fresh sender rollup the items are merged,
// ranked and cut in SQL (pageQuery), so only the page leaves the database: a year of all
// domains holds tens of thousands of items. Otherwise the per-source sums are grouped and
// sorted here (groupItems), in the same order. Advice is computed for the page only.
func (a *API) Page(ctx context.Context, f store.Filter, page, size int) (List, error) {
	out, ok, err := a.rollupPage(ctx, f, page, size)
	if err != nil {
		return List{}, err
	}
	if !ok {
		rows, err := a.Rows(ctx, f, DimSender)
		if err != nil {
			return List{}, err
		}
		items := groupItems(rows)
		out = List{Items: []Item{}, Total: int64(len(items)), Page: page, PageSize: size}
		if lo := (page - 1) * size; lo < len(items) {
			out.Items = items[lo:min(lo+size, len(items))]
		}
	}
	for i := range out.Items {
		advise(&out.Items[i])
	}
	return out, nil
}

// Row is one group's sums in one policy domain ("" with DimCountry: all domains together).
type Row struct {
	Domain string
	Group  group
	Name   string // a country's name
	Sums
}

// Rows sums the sources under f by sender group (DimSender, per policy domain) or by country
// (DimCountry, all domains together): from the sender rollup when it answers the question
// (no filter it lacks, every domain's rows fresh, a window running to the data's end), else
// from the per-source rollups joined to sender_sources. Both give the same numbers
// (TestRollupMatchesBruteForce).
func (a *API) Rows(ctx context.Context, f store.Filter, dim int) ([]Row, error) {
	var sums []Sums
	names := map[int32]string{}
	ok := false
	if rollupAnswers(f) {
		domains, all, none, err := a.rollupScope(ctx, f)
		if err != nil || none {
			return nil, err
		}
		sums, ok, err = a.svc.fromRollup(ctx, dim, domains, all, windowOf(f))
		if err != nil {
			return nil, err
		}
		if ok && dim == DimSender {
			seen := map[int64]bool{}
			var ids []int64
			for _, r := range sums {
				if !seen[int64(r.DomainID)] {
					seen[int64(r.DomainID)] = true
					ids = append(ids, int64(r.DomainID))
				}
			}
			if names, err = a.svc.domainNames(ctx, ids); err != nil {
				return nil, err
			}
		}
	}
	if !ok {
		var err error
		if sums, names, err = a.fromSources(ctx, f, dim); err != nil {
			return nil, err
		}
	}
	return a.attach(ctx, sums, names, dim)
}

// attach gives each sum its group (and, with DimSender, its domain's name from names).
func (a *API) attach(ctx context.Context, sums []Sums, names map[int32]string, dim int) ([]Row, error) {
	seen := map[int64]bool{}
	var ids []int64
	for _, r := range sums {
		if !seen[r.KeyID] {
			seen[r.KeyID] = true
			ids = append(ids, r.KeyID)
		}
	}
	gs, gnames, err := a.svc.groups(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Row, 0, len(sums))
	for _, r := range sums {
		g, known := gs[r.KeyID]
		if !known {
			// A source without a sender_sources row yet: not enriched as far as grouping knows.
			g = group{Key: PendingKey, Type: TypeUnknown, Pending: true}
			if dim == DimCountry {
				g = group{}
			}
		}
		row := Row{Group: g, Name: gnames[r.KeyID], Sums: r}
		if dim == DimSender {
			row.Domain = names[r.DomainID]
		}
		out = append(out, row)
	}
	return out, nil
}

// rollupScope is the domains a question asks the sender rollup about: all of them, or f's
// one domain (none: it has no rollups, so nothing to answer).
func (a *API) rollupScope(ctx context.Context, f store.Filter) (domains []int32, all, none bool, err error) {
	if f.Domain == "" {
		return nil, true, false, nil
	}
	id, err := a.svc.domainID(ctx, f.Domain)
	if err != nil || id == 0 {
		return nil, false, err == nil, err
	}
	return []int32{id}, false, false, nil
}

// rollupAnswers: the sender rollup has no reporter, source or outcome dimension.
func rollupAnswers(f store.Filter) bool {
	return f.OrgName == "" && !f.SourceIP.IsValid() && !f.SourceRange.IsValid() && f.DKIM == "" && f.SPF == "" && f.Disposition == "" &&
		f.Sender == "" && f.Country == "" && f.ASN == 0
}

// fromSources sums the per-source rollups under f by the sources' groups (pkg/analytics
// plans the window and applies every filter).
func (a *API) fromSources(ctx context.Context, f store.Filter, dim int) ([]Sums, map[int32]string, error) {
	key := "ss.group_id"
	if dim == DimCountry {
		key = "ss.country_id"
	}
	gs, err := a.an.SourceGroups(ctx, f, analytics.GroupQuery{Join: "LEFT JOIN sender_sources ss ON ss.ip_id = i.id", Keys: []string{key}, ByDomain: dim == DimSender})
	if err != nil {
		return nil, nil, err
	}
	names := map[int32]string{}
	ids := map[string]int32{}
	out := make([]Sums, 0, len(gs))
	for _, g := range gs {
		k := int64(-1)
		if g.Keys[0].Valid {
			k, _ = strconv.ParseInt(g.Keys[0].String, 10, 64)
		}
		if g.Messages <= 0 {
			continue
		}
		id, ok := ids[g.Domain]
		if !ok {
			id = int32(len(ids) + 1)
			ids[g.Domain] = id
			names[id] = g.Domain
		}
		out = append(out, Sums{DomainID: id, KeyID: k, Messages: g.Messages, DMARCPass: g.DMARCPass, DKIMPass: g.DKIMPass, SPFPass: g.SPFPass,
			BothPass: g.BothPass, IPs: g.IPs, First: g.First, Last: g.Last})
	}
	return out, names, nil
}

// Group merges the group rows of each domain into /api/senders items: sources of one known
// service together, unknown ones by the base domain of their PTR names, else by network; the
// sources not enriched yet join the unknown ones (counted as pending).
func Group(rows []Row) []Item {
	items := groupItems(rows)
	for i := range items {
		advise(&items[i])
	}
	return items
}

// groupItems is Group without the advice, most messages first. A year of all domains holds
// tens of thousands of groups: the items are built and sorted by pointer (sorting the structs
// moved them through reflection: half the request's CPU at 16,700 groups).
func groupItems(rows []Row) []Item {
	type key struct{ domain, name string }
	type acc struct {
		it          Item
		key         string
		first, last int32
	}
	byKey := make(map[key]*acc, len(rows))
	order := make([]*acc, 0, len(rows))
	for _, r := range rows {
		g := r.Group
		k := key{domain: r.Domain, name: g.itemKey()}
		a := byKey[k]
		if a == nil {
			a = &acc{it: Item{Domain: r.Domain, SenderType: g.Type}, key: k.name, first: r.First, last: r.Last}
			if a.it.SenderType == "" {
				a.it.SenderType = TypeUnknown
			}
			if g.Sender != "" {
				name := g.Sender
				a.it.Sender = &name
			}
			byKey[k] = a
			order = append(order, a)
		}
		it := &a.it
		if !g.Pending {
			it.BaseDomain, it.ASN, it.ASOrg = optStr(g.BaseDomain), optInt(g.ASN), optStr(g.ASOrg)
		}
		it.Messages += r.Messages
		it.IPs += r.IPs
		it.DMARCPassMessages += r.DMARCPass
		it.DKIMAlignedMessages += r.DKIMPass
		it.SPFAlignedMessages += r.SPFPass
		it.Alignment.Both += r.BothPass
		if g.Pending {
			it.PendingIPs += r.IPs
		}
		a.first, a.last = min(a.first, r.First), max(a.last, r.Last)
	}
	for _, a := range order {
		finish(&a.it, a.first, a.last)
	}
	// A total order (messages, domain, label, item key), so pages never overlap. pageQuery
	// ranks in SQL in the same order: change both together (TestPageEqualsGroupItems).
	slices.SortFunc(order, func(x, y *acc) int {
		i, j := &x.it, &y.it
		if i.Messages != j.Messages {
			return cmp.Compare(j.Messages, i.Messages)
		}
		if i.Domain != j.Domain {
			return strings.Compare(i.Domain, j.Domain)
		}
		if c := strings.Compare(label(i), label(j)); c != 0 {
			return c
		}
		return strings.Compare(x.key, y.key)
	})
	items := make([]Item, len(order))
	for i, a := range order {
		items[i] = a.it
	}
	return items
}

// finish derives an item's alignment breakdown, pass rate and first and last days from its
// sums.
func finish(it *Item, first, last int32) {
	it.Alignment.DKIMOnly = it.DKIMAlignedMessages - it.Alignment.Both
	it.Alignment.SPFOnly = it.SPFAlignedMessages - it.Alignment.Both
	it.Alignment.Neither = it.Messages - it.Alignment.Both - it.Alignment.DKIMOnly - it.Alignment.SPFOnly
	if it.Messages > 0 {
		r := float64(it.DMARCPassMessages) / float64(it.Messages)
		it.DMARCPassRate = &r
	}
	it.FirstSeen = rollup.DayTime(first).Format("2006-01-02")
	it.LastSeen = rollup.DayTime(last).Format("2006-01-02")
}

// advise sets an item's advice from its sums.
func advise(it *Item) {
	name := ""
	if it.Sender != nil {
		name = *it.Sender
	} else if it.BaseDomain != nil {
		name = *it.BaseDomain
	} else if it.ASOrg != nil {
		name = *it.ASOrg
	}
	facts := Facts{Domain: it.Domain, Sender: name, Type: it.SenderType, Messages: it.Messages, DMARCPass: it.DMARCPassMessages,
		DKIMPass: it.DKIMAlignedMessages, SPFPass: it.SPFAlignedMessages, PendingIPs: it.PendingIPs}
	if it.Sender == nil {
		facts.Type = TypeUnknown
		if it.SenderType == TypeISP {
			facts.Type = TypeISP
		}
	}
	it.Advice = Advise(facts)
}

func label(it *Item) string {
	switch {
	case it.Sender != nil:
		return *it.Sender
	case it.BaseDomain != nil:
		return *it.BaseDomain
	case it.ASOrg != nil:
		return *it.ASOrg
	}
	return ""
}

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optInt(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func (a *API) listMappings(c echo.Context) error {
	ms, err := a.svc.Mappings(c.Request().Context())
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []Mapping{}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": ms, "total": len(ms), "page": 1, "page_size": len(ms)})
}

// Audit actions of sender mappings.
const (
	AuditMappingPut    = "sender.mapping_put"
	AuditMappingDelete = "sender.mapping_delete"
)

// putMapping adds or replaces (same kind and pattern) a mapping: repeating it is harmless.
func (a *API) putMapping(c echo.Context) error {
	var m Mapping
	if err := c.Bind(&m); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body: want {\"kind\": \"domain\"|\"asn\", \"pattern\", \"name\", \"type\"}")
	}
	m.ID = 0
	saved, err := a.svc.PutMapping(c.Request().Context(), m)
	if errors.Is(err, ErrInvalid) {
		a.record(c, audit.Entry{Action: AuditMappingPut, Outcome: audit.Failure, Target: "sender_mapping",
			Details: map[string]any{"kind": m.Kind, "pattern": m.Pattern, "error": err.Error()}})
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: AuditMappingPut, Target: fmt.Sprintf("sender_mapping:%d", saved.ID),
		Details: map[string]any{"kind": saved.Kind, "pattern": saved.Pattern, "name": saved.Name, "type": saved.Type}})
	return c.JSON(http.StatusOK, saved)
}

func (a *API) deleteMapping(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("id", "want a positive whole number")
	}
	m, err := a.svc.DeleteMapping(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no sender mapping %d", id))
	}
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: AuditMappingDelete, Target: fmt.Sprintf("sender_mapping:%d", id),
		Details: map[string]any{"kind": m.Kind, "pattern": m.Pattern, "name": m.Name, "type": m.Type}})
	return c.NoContent(http.StatusNoContent)
}

// record writes an audit entry for the request's caller; a lost entry is logged, not hidden.
func (a *API) record(c echo.Context, e audit.Entry) { route.Record(c, a.audit, a.svc.log, e) }

// OpenAPI is this package's fragment of the API description (merged by pkg/httpapi).
//
//go:embed openapi.json
var OpenAPI []byte
