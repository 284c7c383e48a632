// Package analytics serves the rollup endpoints (/api/rollup/...): summary, top sources,
// alignment, timeline, failure trend, top reporters and policy compliance, under the common
// filters. Answers come from the rollup tables pkg/rollup maintains, never from a scan of
// years of records: each question reads the smallest rollup family that has the dimensions it
// filters and groups by (ranking and counting sources: the narrow families without outcomes),
// whole years, quarters, months and dekads from their tables where the family has them and
// only the window's edge days from day tables (planWindow). An IP filter reads the source rollups by the address index; only the report
// counts of an IP-filtered summary join records to reports (through records_ip_idx).
//
// Answers are cached in Redis (pkg/gencache) under the generation of their domain, which the
// rollup maintenance bumps whenever it changes that domain's rollups.
package analytics

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// OpenAPI is this package's fragment of the API description (paths and schemas of the rollup
// endpoints), merged into the served document by pkg/httpapi.
//
//go:embed openapi.json
var OpenAPI []byte

// Deps are what the API needs. Redis may be nil (no cache); Now defaults to time.Now.
type Deps struct {
	Store    *store.Store
	Redis    redis.UniversalClient
	CacheTTL time.Duration // 0: gencache.DefaultTTL
	Log      *slog.Logger
	Now      func() time.Time
	// Describe, when set, adds enrichment fields (PTR, sender, network, country) to the
	// sources answered (pkg/enrich and pkg/senders provide it).
	Describe func(ctx context.Context, ips []netip.Addr) (map[netip.Addr]SourceInfo, error)
}

// Cache is the answer cache (nil without Redis), for its hit and miss counts.
func (a *API) Cache() *gencache.Cache { return a.cache }

// API serves the rollup endpoints.
type API struct {
	eng   *engine
	cache *gencache.Cache
	log   *slog.Logger
	now   func() time.Time
	// flight computes each question once however many ask it at the same time: a dashboard
	// opened by many people, or answers expiring together, would otherwise run the same
	// heavy queries side by side.
	flight singleflight.Group

	describe func(ctx context.Context, ips []netip.Addr) (map[netip.Addr]SourceInfo, error)
}

// New builds the API.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &API{eng: newEngine(d.Store), cache: gencache.New(d.Redis, d.CacheTTL, d.Log), log: d.Log, now: d.Now, describe: d.Describe}
}

// Routes lists the rollup endpoints.
func (a *API) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/rollup/summary", Role: auth.Viewer, Handler: a.summary},
		{Method: http.MethodGet, Path: "/api/rollup/sources", Role: auth.Viewer, Handler: a.sources},
		{Method: http.MethodGet, Path: "/api/rollup/alignment", Role: auth.Viewer, Handler: a.alignment},
		{Method: http.MethodGet, Path: "/api/rollup/alignment-breakdown", Role: auth.Viewer, Handler: a.breakdown},
		{Method: http.MethodGet, Path: "/api/rollup/timeline", Role: auth.Viewer, Handler: a.timeline},
		{Method: http.MethodGet, Path: "/api/rollup/failure-trend", Role: auth.Viewer, Handler: a.failureTrend},
		{Method: http.MethodGet, Path: "/api/rollup/top-organizations", Role: auth.Viewer, Handler: a.topOrganizations},
		{Method: http.MethodGet, Path: "/api/rollup/policy", Role: auth.Viewer, Handler: a.policy},
	}
}

// RegisterRoutes adds the rollup endpoints to g, the /api group.
func (a *API) RegisterRoutes(g *echo.Group) {
	for _, r := range a.Routes() {
		g.Add(r.Method, strings.TrimPrefix(r.Path, "/api"), r.Handler)
	}
}

const (
	defaultLimit    = 10
	maxLimit        = 500
	defaultPageSize = 50
)

// request is one parsed question: the common filters plus the endpoint's own parameters.
type request struct {
	f        store.Filter
	today    int32
	page     int
	size     int // limit or page_size
	interval string
}

// key identifies the answer: every parameter after parsing, so spellings of the same question
// share it, and today, since open windows end today.
func (r request) key(endpoint string) string {
	f := r.f
	return fmt.Sprintf("%s|%d|%d|%s|%s|%v|%v|%s|%s|%s|%d|%d|%d|%s|%q|%s|%d", endpoint, f.Start.Unix(), f.End.Unix(), f.Domain, f.OrgName,
		f.SourceIP, f.SourceRange, f.DKIM, f.SPF, f.Disposition, r.today, r.page, r.size, r.interval, f.Sender, f.Country, f.ASN)
}

// serve parses the common filters, then answers from the cache or by compute.
func (a *API) serve(c echo.Context, endpoint string, parse func(echo.Context, *request) error, compute func(context.Context, scope, request) (any, error)) error {
	if err := params[endpoint].Check(c); err != nil {
		return err
	}
	now := a.now()
	f, err := apiparams.Filter(c, now)
	if err != nil {
		return err
	}
	req := request{f: f, today: rollup.DayOf(now)}
	if parse != nil {
		if err := parse(c, &req); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	key := req.key(endpoint)
	// On a miss the ticket holds the generation seen before the rollups are read: if they
	// change meanwhile, the bump makes this answer unreachable instead of serving it as fresh.
	body, ticket, ok := a.cache.Get(ctx, f.Domain, key)
	if ok {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
	}
	// The computation outlives a caller that goes away: others may be waiting for it.
	v, err, _ := a.flight.Do(f.Domain+"\x00"+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), computeTimeout)
		defer cancel()
		s, err := a.eng.resolve(ctx, f)
		if err != nil {
			return nil, err
		}
		v, err := compute(ctx, s, req)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		a.cache.Put(ctx, ticket, body)
		return body, nil
	})
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, v.([]byte))
}

// params are the query parameters each endpoint takes: the common filters and its own.
var params = map[string]apiparams.Set{
	"summary":             apiparams.FilterSet,
	"alignment":           apiparams.FilterSet,
	"alignment-breakdown": apiparams.FilterSet,
	"sources":             apiparams.FilterSet.With("limit", "page"),
	"top-organizations":   apiparams.FilterSet.With("limit", "page"),
	"policy":              apiparams.FilterSet.With("page", "page_size"),
	"timeline":            apiparams.FilterSet.With("interval"),
	"failure-trend":       apiparams.FilterSet,
}

// Params lists the query parameters of each endpoint by path, for tests that compare them
// with the OpenAPI document.
func Params() map[string][]string {
	out := map[string][]string{}
	for endpoint, s := range params {
		out["/api/rollup/"+endpoint] = s.Names()
	}
	return out
}

// computeTimeout bounds one answer's queries.
const computeTimeout = time.Minute

func (a *API) summary(c echo.Context) error {
	return a.serve(c, "summary", nil, func(ctx context.Context, s scope, _ request) (any, error) { return a.eng.summary(ctx, s) })
}

func (a *API) alignment(c echo.Context) error {
	return a.serve(c, "alignment", nil, func(ctx context.Context, s scope, _ request) (any, error) { return a.eng.alignment(ctx, s) })
}

func (a *API) breakdown(c echo.Context) error {
	return a.serve(c, "alignment-breakdown", nil, func(ctx context.Context, s scope, _ request) (any, error) { return a.eng.breakdown(ctx, s) })
}

// topParams reads limit (how many) and page (which of them, from 1).
func topParams(c echo.Context, r *request) error {
	var err error
	if r.size, err = apiparams.Int(c, "limit", defaultLimit, 1, maxLimit); err != nil {
		return err
	}
	r.page, err = apiparams.Int(c, "page", 1, 1, 1_000_000)
	return err
}

func (a *API) sources(c echo.Context) error {
	return a.serve(c, "sources", topParams, func(ctx context.Context, s scope, r request) (any, error) {
		out, err := a.eng.sources(ctx, s, r.page, r.size)
		if err == nil {
			err = a.describeSources(ctx, out.Items)
		}
		return out, err
	})
}

func (a *API) topOrganizations(c echo.Context) error {
	return a.serve(c, "top-organizations", topParams, func(ctx context.Context, s scope, r request) (any, error) {
		return a.eng.topOrganizations(ctx, s, r.page, r.size)
	})
}

func (a *API) policy(c echo.Context) error {
	parse := func(c echo.Context, r *request) error {
		var err error
		if r.page, err = apiparams.Int(c, "page", 1, 1, 1_000_000); err != nil {
			return err
		}
		r.size, err = apiparams.Int(c, "page_size", defaultPageSize, 1, maxLimit)
		return err
	}
	return a.serve(c, "policy", parse, func(ctx context.Context, s scope, r request) (any, error) {
		return a.eng.policy(ctx, s, r.page, r.size)
	})
}

func (a *API) timeline(c echo.Context) error {
	parse := func(c echo.Context, r *request) error {
		r.interval = "day"
		if v := c.QueryParam("interval"); v != "" {
			if v != "day" && v != "week" && v != "month" {
				return apiparams.BadParam("interval", "want one of day, week, month")
			}
			r.interval = v
		}
		return nil
	}
	return a.serve(c, "timeline", parse, func(ctx context.Context, s scope, r request) (any, error) {
		return a.eng.timeline(ctx, s, r.interval, r.today)
	})
}

func (a *API) failureTrend(c echo.Context) error {
	return a.serve(c, "failure-trend", nil, func(ctx context.Context, s scope, r request) (any, error) {
		return a.eng.failureTrend(ctx, s, r.today)
	})
}
