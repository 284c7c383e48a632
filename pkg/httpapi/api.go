// Package httpapi serves Vigil's REST API (DESIGN.md contract), health endpoints and the
// Asynqmon UI on echo. Handlers only read and enqueue: parsing happens on workers.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/vigilhq/vigil/pkg/accounts"
	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apidocs"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/digest"
	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/failure"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/reports"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/route"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/tlsrpt"
	"github.com/vigilhq/vigil/pkg/web"
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
	Store     *store.Store
	Ingest    *ingest.Service
	Mail      *mailpoll.Service // nil: the mailbox routes answer 503
	Queue     Queue             // nil: the task triggers answer 503
	Tasks     TaskReader        // nil: GET /tasks/status answers 503
	Analytics *analytics.API    // nil: built on Store without an answer cache
	// Geolocation and Senders serve sender intelligence (pkg/enrich, pkg/senders); nil: their
	// routes are listed but answer 503. GeoStatus adds the GeoIP databases' state to /ready.
	Geolocation *enrich.API
	Senders     *senders.API
	// Describe is what enrichment knows of some sources (pkg/enrich's Service.Describe), for
	// the enrichment fields of records; nil: they stay null.
	Describe   func(ctx context.Context, ips []netip.Addr) (map[netip.Addr]analytics.SourceInfo, error)
	GeoStatus  interface{ GeoIP() any }
	Redis      Pinger
	Monitoring http.Handler
	Alerts     *alerting.Service // nil: the alert routes answer 503
	Notify     *notify.Service   // nil: the channel routes answer 503
	TLSReports *tlsrpt.Service   // nil: the TLS report routes and POST /tlsrpt answer 503
	Failures   *failure.Service  // nil: the failure report routes answer 503
	ML         *ml.Service       // nil: the ML, forecast and advice routes answer 503
	Export     *export.Service   // nil: the export routes answer 503
	Digest     *digest.Service   // nil: the digest routes answer 503
	Web        *web.Site         // nil: the embedded dashboard is built here
	Metrics    *metrics.Metrics  // nil: requests are not counted and /metrics answers 503
	Retention  *retention.API    // nil: the retention routes answer 503
	Limits     Limits
	TempDir    string // where uploads are spooled before they are stored
	Log        *slog.Logger

	Auth           *auth.Service
	Audit          *audit.Log
	Limiter        *ratelimit.Limiter
	Rates          Rates
	TrustedProxies []netip.Prefix // may set X-Forwarded-For
	IPv6Prefix     int            // leading bits of an IPv6 address that are one client (0: /64)
	CORSOrigins    []string
}

// API holds the handlers' dependencies.
type API struct {
	Deps
	log    *slog.Logger
	now    func() time.Time
	params map[string]apiparams.Set // the query parameters of each route (queryParams)
}

// New builds the echo server with every route registered.
func New(d Deps) *echo.Echo {
	a := &API{Deps: d, log: d.Log, now: time.Now, params: queryParams()}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.IPExtractor = IPExtractor(d.TrustedProxies)
	e.SchemeExtractor = SchemeExtractor(d.TrustedProxies)
	e.Pre(securityHeaders)
	if d.Metrics != nil {
		e.Use(d.Metrics.Echo) // outside Recover, so a panic's 500 is counted too
	}
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
		// Public: probes and the API description.
		{Method: get, Path: "/health", Role: auth.Public, Rate: RateNone, h: a.health},
		{Method: get, Path: "/ready", Role: auth.Public, Rate: RateNone, h: a.ready},
		{Method: get, Path: "/openapi.json", Role: auth.Public, Rate: RateNone, h: a.openAPI},

		// Viewer, filtered in the handler: a viewer or analyst sees only their own exports'
		// tasks (404 for any other); an admin sees every task.
		{Method: get, Path: "/tasks/status/:task_id", Role: auth.Viewer, Rate: RateAPI, h: a.taskStatus},

		// Admin: the queue.
		{Method: post, Path: "/tasks/trigger/process-reports", Role: auth.Admin, Rate: RateAPI, h: a.triggerProcess},
	}
	// Feature packages declare each endpoint's least role (pkg/route); one whose service this
	// process was built without still lists its routes, answering 503.
	an := a.Analytics
	if an == nil && a.Store != nil {
		an = analytics.New(analytics.Deps{Store: a.Store, Log: a.log})
	}
	site := a.Web
	if site == nil {
		site = web.New()
	}
	// The API's own resources: accounts and tokens, files received and reports, mailboxes.
	acc, rep, mail := accounts.New(a.Auth, a.Audit, a.log), a.reports(), mailpoll.NewAPI(a.Mail, a.Audit, a.log)
	rs = append(rs, features(RateAuth, acc.AuthRoutes(), true)...)     // login, refresh, logout (public)
	rs = append(rs, features(RateAPI, acc.Routes(), true)...)          // one's account and keys; users, audit (admin)
	rs = append(rs, features(RateAPI, rep.Routes(), true)...)          // files received, reports, records, domains
	rs = append(rs, features(RateUpload, rep.UploadRoutes(), true)...) // put reports in (analyst)
	rs = append(rs, features(RateAPI, mail.Routes(), true)...)         // mailboxes (admin; 503 without polling)

	rs = append(rs, features(RateAPI, an.Routes(), an != nil)...)                              // the rollup answers
	rs = append(rs, features(RateAPI, a.Geolocation.Routes(), a.Geolocation != nil)...)        // geolocation, enrichment
	rs = append(rs, features(RateAPI, a.Senders.Routes(), a.Senders != nil)...)                // named senders, mappings
	rs = append(rs, features(RateAPI, a.Alerts.Routes(), a.Alerts != nil)...)                  // alerts, rules, windows
	rs = append(rs, features(RateAPI, a.Notify.Routes(), a.Notify != nil)...)                  // notification channels
	rs = append(rs, features(RateAPI, a.TLSReports.Routes(), a.TLSReports != nil)...)          // SMTP TLS reports
	rs = append(rs, features(RateTLSRPT, a.TLSReports.IntakeRoutes(), a.TLSReports != nil)...) // HTTPS intake (public)
	rs = append(rs, features(RateAPI, a.Failures.Routes(), a.Failures != nil)...)              // failure reports
	rs = append(rs, features(RateAPI, a.ML.Routes(), a.ML != nil)...)                          // anomalies, forecasts, advice
	rs = append(rs, features(RateExportCSV, a.Export.TabularRoutes(), a.Export != nil)...)     // CSV and XLSX exports
	rs = append(rs, features(RateExportPDF, a.Export.PDFRoutes(), a.Export != nil)...)         // the PDF summary
	rs = append(rs, features(RateAPI, a.Export.FileRoutes(), a.Export != nil)...)              // rendered exports
	rs = append(rs, features(RateAPI, a.Digest.Routes(), a.Digest != nil)...)                  // digest subscriptions
	rs = append(rs, features(RateNone, site.Routes(), true)...)                                // the dashboard (public)
	rs = append(rs, features(RateNone, apidocs.New().Routes(), true)...)                       // /docs (public)
	rs = append(rs, features(RateNone, a.Metrics.Routes(a.log), a.Metrics != nil)...)          // /metrics (admin)
	rs = append(rs, features(RateAPI, a.Retention.Routes(), a.Retention != nil)...)            // retention policy, purge (admin)
	if a.Monitoring != nil {
		h := echo.WrapHandler(a.Monitoring)
		rs = append(rs, Route{Method: "*", Path: "/monitoring", Role: auth.Admin, h: h}, Route{Method: "*", Path: "/monitoring/*", Role: auth.Admin, h: h})
	}
	return rs
}

// features turns a feature package's routes into table lines; not built in this process,
// each answers 503.
func features(rate RateClass, in []route.Route, built bool) []Route {
	out := make([]Route, 0, len(in))
	for _, r := range in {
		out = append(out, Route{Method: r.Method, Path: r.Path, Role: r.Role, Rate: rate, h: needs(built, r.Handler), params: r.Params})
	}
	return out
}

// needs answers 503 in place of a capability this process was built without.
func needs(built bool, h echo.HandlerFunc) echo.HandlerFunc {
	if built {
		return h
	}
	return func(echo.Context) error {
		return problem(http.StatusServiceUnavailable, "not available in this process")
	}
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
// Anyone may ask, so an anonymous caller learns only which dependency is down; the driver's
// error (internal addresses, ports, user names) goes to the log, and to admins (issue 18).
func (a *API) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "redis": "ok"}
	detail := a.isAdmin(c)
	status := http.StatusOK
	down := func(name string, err error) {
		a.log.Warn("not ready", "dependency", name, "err", err)
		checks[name], status = "unavailable", http.StatusServiceUnavailable
		if detail {
			checks[name] = err.Error()
		}
	}
	if err := a.Store.Ping(ctx); err != nil {
		down("database", err)
	}
	if a.Redis != nil {
		if err := a.Redis.Ping(ctx); err != nil {
			down("redis", err)
		}
	}
	state := "ready"
	if status != http.StatusOK {
		state = "unavailable"
	}
	body := map[string]any{"status": state, "checks": checks}
	// GeoIP databases are optional: their state is told here (with how to add them), but
	// readiness does not depend on them.
	if a.GeoStatus != nil {
		body["geoip"] = a.GeoStatus.GeoIP()
	}
	return c.JSON(status, body)
}

// isAdmin tells whether a public route's caller sent valid admin credentials. Nothing is
// refused here: without them the caller is simply anonymous.
func (a *API) isAdmin(c echo.Context) bool {
	if a.Auth == nil {
		return false
	}
	req := c.Request()
	var p auth.Principal
	var err error
	scheme, cred, _ := strings.Cut(req.Header.Get(echo.HeaderAuthorization), " ")
	switch key := strings.TrimSpace(req.Header.Get("X-API-Key")); {
	case key != "":
		p, err = a.Auth.VerifyKey(req.Context(), key)
	case strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) != "":
		p, err = a.Auth.VerifyAccess(req.Context(), strings.TrimSpace(cred))
	default:
		return false
	}
	return err == nil && p.Role >= auth.Admin
}

// reports serves the files received and the aggregate reports (pkg/reports).
func (a *API) reports() *reports.API {
	d := reports.Deps{Store: a.Store, Ingest: a.Ingest, Limits: reports.Limits(a.Limits), TempDir: a.TempDir,
		Describe: a.Describe, Audit: a.Audit, Log: a.log, Now: a.now}
	// A nil service in the interface would not read as nil there.
	if a.TLSReports != nil {
		d.TLSReports = a.TLSReports
	}
	if a.Failures != nil {
		d.Failures = a.Failures
	}
	return reports.New(d)
}
