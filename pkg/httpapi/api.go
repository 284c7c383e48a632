// Package httpapi serves Vigil's REST API (DESIGN.md contract), health endpoints and the
// Asynqmon UI on echo. Handlers only read and enqueue: parsing happens on workers.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/store"
)

// Limits bound what one upload request may carry.
type Limits struct {
	UploadFiles int
	UploadBytes int64
	FileBytes   int64
}

// Pinger is a dependency /ready checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the API needs; Monitoring may be nil (no Asynqmon). Without Auth every route
// but the public ones answers 401; without Limiter nothing is rate-limited.
type Deps struct {
	Store      *store.Store
	Ingest     *ingest.Service
	Mail       *mailpoll.Service // nil: the mailbox routes answer 503
	Queue      Queue             // nil: the task triggers answer 503
	Tasks      TaskReader        // nil: GET /tasks/status answers 503
	Analytics  *analytics.API    // nil: built on Store without an answer cache
	Alerts     *alerting.Service // nil: the alert routes answer 503
	Notify     *notify.Service   // nil: the channel routes answer 503
	Redis      Pinger
	Monitoring http.Handler
	Limits     Limits
	TempDir    string // where uploads are spooled before they are stored
	Log        *slog.Logger

	Auth           *auth.Service
	Audit          *audit.Log
	Limiter        *ratelimit.Limiter
	Rates          Rates
	TrustedProxies []netip.Prefix // may set X-Forwarded-For
	CORSOrigins    []string
}

// API holds the handlers' dependencies.
type API struct {
	Deps
	log *slog.Logger
	now func() time.Time
}

// New builds the echo server with every route registered.
func New(d Deps) *echo.Echo {
	a := &API{Deps: d, log: d.Log, now: time.Now}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.IPExtractor = IPExtractor(d.TrustedProxies)
	e.SchemeExtractor = SchemeExtractor(d.TrustedProxies)
	e.Pre(securityHeaders)
	e.Use(middleware.Recover())
	e.Use(a.requestLog)
	e.Use(cors(d.CORSOrigins))
	a.routes(e)
	return e
}

// routes registers the route table, each route behind the guard its line declares.
func (a *API) routes(e *echo.Echo) {
	for _, rt := range a.table() {
		if rt.Method == "*" {
			e.Any(rt.Path, rt.h, a.guard(rt))
		} else {
			e.Add(rt.Method, rt.Path, rt.h, a.guard(rt))
		}
	}
}

// table lists every route in one place with the least role that may call it and the rate
// limit it counts against (listmonk style: grouped by permission).
func (a *API) table() []Route {
	const get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
	rs := []Route{
		// Public: probes, the API description, and getting a token.
		{get, "/health", auth.Public, RateNone, a.health},
		{get, "/ready", auth.Public, RateNone, a.ready},
		{get, "/openapi.json", auth.Public, RateNone, a.openAPI},
		{post, "/auth/login", auth.Public, RateAuth, a.login},
		{post, "/auth/refresh", auth.Public, RateAuth, a.refresh},
		{post, "/auth/logout", auth.Public, RateAuth, a.logout},

		// Viewer: read what was ingested; one's own account and keys.
		{get, "/api/ingests/:id", auth.Viewer, RateAPI, a.getIngest},
		{get, "/api/reports", auth.Viewer, RateAPI, a.listReports},
		{get, "/api/reports/:id", auth.Viewer, RateAPI, a.getReport},
		{get, "/api/reports/:id/records", auth.Viewer, RateAPI, a.listRecords},
		{get, "/api/domains", auth.Viewer, RateAPI, a.listDomains},
		{get, "/users/me", auth.Viewer, RateAPI, a.me},
		{patch, "/users/me", auth.Viewer, RateAPI, a.updateMe},
		{get, "/users/api-keys", auth.Viewer, RateAPI, a.listKeys},
		{post, "/users/api-keys", auth.Viewer, RateAPI, a.createKey},
		{del, "/users/api-keys/:id", auth.Viewer, RateAPI, a.deleteKey},

		// Analyst: put reports in.
		{post, "/api/upload", auth.Analyst, RateUpload, a.upload},

		// Admin: accounts, the audit log, mailboxes, the queue.
		{get, "/users", auth.Admin, RateAPI, a.listUsers},
		{post, "/users", auth.Admin, RateAPI, a.createUser},
		{get, "/users/:id", auth.Admin, RateAPI, a.getUser},
		{patch, "/users/:id", auth.Admin, RateAPI, a.updateUser},
		{del, "/users/:id", auth.Admin, RateAPI, a.deleteUser},
		{get, "/audit", auth.Admin, RateAPI, a.listAudit},
		{post, "/tasks/trigger/email-ingestion", auth.Admin, RateAPI, a.triggerMail},
		{post, "/tasks/trigger/process-reports", auth.Admin, RateAPI, a.triggerProcess},
		{get, "/tasks/status/:task_id", auth.Admin, RateAPI, a.taskStatus},
		{get, "/api/mailboxes", auth.Admin, RateAPI, a.listMailboxes},
		{post, "/api/mailboxes", auth.Admin, RateAPI, a.createMailbox},
		{get, "/api/mailboxes/:id", auth.Admin, RateAPI, a.getMailbox},
		{patch, "/api/mailboxes/:id", auth.Admin, RateAPI, a.updateMailbox},
		{del, "/api/mailboxes/:id", auth.Admin, RateAPI, a.deleteMailbox},
	}
	// Viewer: the rollup answers (pkg/analytics), every one a read.
	an := a.Analytics
	if an == nil && a.Store != nil {
		an = analytics.New(analytics.Deps{Store: a.Store, Log: a.log})
	}
	for _, r := range an.Routes() { // a nil *analytics.API still lists its routes (for Routes)
		rs = append(rs, Route{r.Method, r.Path, auth.Viewer, RateAPI, r.Handler})
	}
	// Alerts (pkg/alerting, pkg/notify): each route declares its least role.
	rs = append(rs, featureRoutes(a.Alerts.Routes(), a.Alerts == nil)...)
	rs = append(rs, featureRoutes(a.Notify.Routes(), a.Notify == nil)...)
	if a.Monitoring != nil {
		h := echo.WrapHandler(a.Monitoring)
		rs = append(rs, Route{"*", "/monitoring", auth.Admin, RateNone, h}, Route{"*", "/monitoring/*", auth.Admin, RateNone, h})
	}
	return rs
}

// featureRoutes turns a feature package's routes into table lines; off (the service is not
// built in this process), each answers 503. A nil service still lists its routes.
func featureRoutes(in []alerting.Route, off bool) []Route {
	out := make([]Route, 0, len(in))
	for _, r := range in {
		h := r.Handler
		if off {
			h = func(echo.Context) error {
				return problem(http.StatusServiceUnavailable, "alerting is not available in this process")
			}
		}
		out = append(out, Route{r.Method, r.Path, r.Role, RateAPI, h})
	}
	return out
}

func (a *API) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		lvl := slog.LevelDebug
		if c.Response().Status >= 500 {
			lvl = slog.LevelWarn
		}
		a.log.Log(c.Request().Context(), lvl, "http request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "duration", time.Since(start))
		return nil
	}
}

func (a *API) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 503 naming the dependency that is down, so an orchestrator stops routing here.
func (a *API) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "redis": "ok"}
	status := http.StatusOK
	if err := a.Store.Ping(ctx); err != nil {
		checks["database"], status = err.Error(), http.StatusServiceUnavailable
	}
	if a.Redis != nil {
		if err := a.Redis.Ping(ctx); err != nil {
			checks["redis"], status = err.Error(), http.StatusServiceUnavailable
		}
	}
	state := "ready"
	if status != http.StatusOK {
		state = "unavailable"
	}
	return c.JSON(status, map[string]any{"status": state, "checks": checks})
}

// List is the envelope of every list response (DESIGN.md).
type List[T any] struct {
	Items    []T   `json:"items"`
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
}
