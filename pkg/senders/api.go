package senders

import (
	_ "embed"
	"errors"
	"fmt"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// API serves /api/senders and the mapping endpoints.
type API struct {
	svc *Service
	an  *analytics.API
	now func() time.Time
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
	ctx := c.Request().Context()
	cat, err := a.svc.Catalog(ctx)
	if err != nil {
		return err
	}
	groups, err := a.an.SourceGroups(ctx, f, analytics.GroupQuery{
		Join:     "LEFT JOIN enrich_ips e ON e.ip = i.ip",
		Keys:     []string{"e.base_domain", "e.asn", "e.as_org", "CASE WHEN e.residential THEN 1 ELSE 0 END", "CASE WHEN e.ip IS NULL THEN 1 ELSE 0 END"},
		ByDomain: true,
	})
	if err != nil {
		return err
	}
	items := Group(groups, cat)
	out := List{Items: []Item{}, Total: int64(len(items)), Page: page, PageSize: size}
	if lo := (page - 1) * size; lo < len(items) {
		out.Items = items[lo:min(lo+size, len(items))]
	}
	return c.JSON(http.StatusOK, out)
}

// Group merges the enrichment groups of each domain into named senders: sources of one known
// service together, unknown ones by the base domain of their PTR names, else by network.
func Group(groups []analytics.SourceGroup, cat *Catalog) []Item {
	type key struct{ domain, name string }
	byKey := map[key]*Item{}
	firsts, lasts := map[key]int32{}, map[key]int32{}
	var order []key
	for _, g := range groups {
		base, asnText, org := g.Keys[0].String, g.Keys[1].String, g.Keys[2].String
		residential, pending := g.Keys[3].String == "1", g.Keys[4].String == "1"
		asn, _ := strconv.ParseInt(asnText, 10, 64)
		s, known := cat.Match(base, uint32(asn), residential)
		k := key{domain: g.Domain}
		switch {
		case known:
			k.name = "s:" + s.Name
		case base != "":
			k.name = "d:" + base
		case asn != 0:
			k.name = "a:" + asnText
		default:
			k.name = "?"
		}
		it := byKey[k]
		if it == nil {
			it = &Item{Domain: g.Domain, SenderType: s.Type}
			if known {
				name := s.Name
				it.Sender = &name
			}
			byKey[k] = it
			order = append(order, k)
			firsts[k], lasts[k] = g.First, g.Last
		}
		// A named group keeps the base domain and network shared by all its sources, if any.
		if !known || it.Messages == 0 {
			it.BaseDomain, it.ASN, it.ASOrg = optStr(base), optInt(asn), optStr(org)
		} else {
			if it.BaseDomain != nil && *it.BaseDomain != base {
				it.BaseDomain = nil
			}
			if it.ASN != nil && *it.ASN != asn {
				it.ASN, it.ASOrg = nil, nil
			}
		}
		it.Messages += g.Messages
		it.IPs += g.IPs
		it.DMARCPassMessages += g.DMARCPass
		it.DKIMAlignedMessages += g.DKIMPass
		it.SPFAlignedMessages += g.SPFPass
		it.Alignment.Both += g.BothPass
		if pending {
			it.PendingIPs += g.IPs
		}
		firsts[k], lasts[k] = min(firsts[k], g.First), max(lasts[k], g.Last)
	}
	items := make([]Item, 0, len(order))
	for _, k := range order {
		it := byKey[k]
		it.Alignment.DKIMOnly = it.DKIMAlignedMessages - it.Alignment.Both
		it.Alignment.SPFOnly = it.SPFAlignedMessages - it.Alignment.Both
		it.Alignment.Neither = it.Messages - it.Alignment.Both - it.Alignment.DKIMOnly - it.Alignment.SPFOnly
		if it.Messages > 0 {
			r := float64(it.DMARCPassMessages) / float64(it.Messages)
			it.DMARCPassRate = &r
		}
		it.FirstSeen = rollup.DayTime(firsts[k]).Format("2006-01-02")
		it.LastSeen = rollup.DayTime(lasts[k]).Format("2006-01-02")
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
		items = append(items, *it)
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Messages != items[j].Messages {
			return items[i].Messages > items[j].Messages
		}
		if items[i].Domain != items[j].Domain {
			return items[i].Domain < items[j].Domain
		}
		return label(items[i]) < label(items[j])
	})
	return items
}

func label(it Item) string {
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

// putMapping adds or replaces (same kind and pattern) a mapping: repeating it is harmless.
func (a *API) putMapping(c echo.Context) error {
	var m Mapping
	if err := c.Bind(&m); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body: want {\"kind\": \"domain\"|\"asn\", \"pattern\", \"name\", \"type\"}")
	}
	m.ID = 0
	saved, err := a.svc.PutMapping(c.Request().Context(), m)
	if errors.Is(err, ErrInvalid) {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, saved)
}

func (a *API) deleteMapping(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("id", "want a positive whole number")
	}
	err = a.svc.DeleteMapping(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no sender mapping %d", id))
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// OpenAPI is this package's fragment of the API description (merged by pkg/httpapi).
//
//go:embed openapi.json
var OpenAPI []byte
