package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/route"
)

// Route is one line of the route table: every route declares the least role that may call it
// and the rate limit it counts against. TestRouteTable walks the echo router and fails on a
// route that is not declared here.
type Route struct {
	Method string // "*" registers every method (echo's Any)
	Path   string
	Role   auth.Role // auth.Public: no credentials needed
	Rate   RateClass
	h      echo.HandlerFunc
	params *apiparams.Set // the query parameters it takes (route.Route's Params); nil: not checked here
}

// RateClass names a rate limit. Authenticated routes count per user (all of a user's tokens
// and keys together), public ones per client address.
type RateClass string

// Rate classes, each configured by a VIGIL_RATE_LIMIT_* variable.
const (
	RateNone      RateClass = ""
	RateAPI       RateClass = "api"
	RateUpload    RateClass = "upload"
	RateExportCSV RateClass = "export_csv"
	RateExportPDF RateClass = "export_pdf"
	RateAuth      RateClass = "auth"
	RateTLSRPT    RateClass = "tlsrpt" // POST /tlsrpt, per client address
)

// Rates are the limits of each class; a zero Rate limits nothing.
type Rates map[RateClass]ratelimit.Rate

// Routes is the route table (without handlers) for tests and documentation.
func Routes() []Route {
	a := &API{Deps: Deps{Monitoring: http.NotFoundHandler()}}
	rs := a.table()
	for i := range rs {
		rs[i].h, rs[i].params = nil, nil
	}
	return rs
}

type ctxKey struct{}

// principal is who the request acts as; the zero Principal on public routes.
func principal(c echo.Context) auth.Principal { return route.Principal(c) }

// PrincipalFrom is the principal of a request context (for code below the handlers).
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(auth.Principal)
	return p, ok
}

// guard authenticates, authorises and rate-limits one route per its declaration. Anything
// missing or wrong is refused before the handler runs: 401 without valid credentials, 403 with
// a role below the route's, 429 past the rate limit.
func (a *API) guard(rt Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if params, strict := a.params[rt.Method+" "+rt.Path]; strict {
			next = checkParams(params, next)
		} else if rt.params != nil {
			next = checkParams(*rt.params, next)
		}
		return func(c echo.Context) error {
			if rt.Role == auth.Public {
				if err := a.limit(c, rt.Rate, "ip:"+ratelimit.AddressSubject(c.RealIP(), a.IPv6Prefix)); err != nil {
					return err
				}
				return next(c)
			}
			p, err := a.authenticate(c, rt)
			if err != nil {
				return err
			}
			if p.Role < rt.Role {
				return problem(http.StatusForbidden, "this needs the %s role; you act as %s", rt.Role, p.Role)
			}
			route.SetPrincipal(c, p)
			req := c.Request()
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), ctxKey{}, p)))
			// One bucket per user, whichever of their tokens or keys the request carries: keys
			// of their own must not multiply a user's budget (issue 18).
			if err := a.limit(c, rt.Rate, "user:"+strconv.FormatInt(p.User.ID, 10)); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// checkParams refuses a query with a parameter outside params, or one given twice, after
// authentication (a caller without credentials learns nothing about the route).
func checkParams(params apiparams.Set, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := params.Check(c); err != nil {
			return err
		}
		return next(c)
	}
}

// monitoringRealm is offered to browsers on /monitoring, which cannot send a bearer token: the
// password of the prompt is an admin's API key.
const monitoringRealm = `Basic realm="Vigil monitoring: any user name, an admin API key as the password", charset="UTF-8"`

func (a *API) unauthorized(c echo.Context, rt Route, format string, args ...any) error {
	h := c.Response().Header()
	h.Set(echo.HeaderWWWAuthenticate, `Bearer realm="vigil"`)
	if strings.HasPrefix(rt.Path, "/monitoring") {
		h.Add(echo.HeaderWWWAuthenticate, monitoringRealm)
	}
	return problem(http.StatusUnauthorized, format, args...)
}

// authenticate reads exactly one credential: a bearer access token or an X-API-Key header (on
// /monitoring also Basic with a key as the password). Keys are never read from the URL.
func (a *API) authenticate(c echo.Context, rt Route) (auth.Principal, error) {
	if a.Auth == nil {
		return auth.Principal{}, a.unauthorized(c, rt, "authentication is not configured")
	}
	req := c.Request()
	authz, key := req.Header.Get(echo.HeaderAuthorization), req.Header.Get("X-API-Key")
	if authz != "" && key != "" {
		return auth.Principal{}, a.unauthorized(c, rt, "send either Authorization or X-API-Key, not both")
	}
	ctx := req.Context()
	var p auth.Principal
	var err error
	scheme, cred, _ := strings.Cut(authz, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case key != "":
		p, err = a.Auth.VerifyKey(ctx, strings.TrimSpace(key))
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		p, err = a.Auth.VerifyAccess(ctx, cred)
	case strings.EqualFold(scheme, "Basic") && strings.HasPrefix(rt.Path, "/monitoring"):
		_, pass, ok := req.BasicAuth()
		if !ok {
			return p, a.unauthorized(c, rt, "malformed Basic credentials")
		}
		if err := sameOrigin(req); err != nil {
			return p, err
		}
		p, err = a.Auth.VerifyKey(ctx, pass)
	case authz != "":
		return p, a.unauthorized(c, rt, "unsupported Authorization scheme: send Authorization: Bearer <access token> or X-API-Key: <key>")
	default:
		return p, a.unauthorized(c, rt, "authentication required: send Authorization: Bearer <access token> or X-API-Key: <key>")
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		return p, a.unauthorized(c, rt, "invalid, expired or revoked credentials")
	}
	return p, err
}

// sameOrigin refuses a state-changing request that a browser sent from another site: Basic
// credentials are attached by the browser to any request, so a form on another site could
// otherwise act on /monitoring (CSRF).
func sameOrigin(req *http.Request) error {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if site := req.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return problem(http.StatusForbidden, "cross-site request refused")
	}
	if o := req.Header.Get(echo.HeaderOrigin); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, req.Host) {
			return problem(http.StatusForbidden, "cross-origin request refused")
		}
	}
	return nil
}

// limit counts one request of class for subject. Redis being down lets the request through
// (logged): rate limits protect capacity, and the login lockout, which protects accounts,
// fails closed in pkg/auth instead.
func (a *API) limit(c echo.Context, class RateClass, subject string) error {
	rate, ok := a.Rates[class]
	if class == RateNone || !ok || rate.Off() || a.Limiter == nil {
		return nil
	}
	res, err := a.Limiter.Allow(c.Request().Context(), string(class), subject, rate)
	if err != nil {
		a.log.Warn("rate limit not checked", "class", class, "err", err)
		return nil
	}
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.FormatInt(res.Limit, 10)) // the burst: what may come at once
	h.Set("RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
	if !res.Allowed {
		return tooMany(c, res.RetryAfter, "rate limit of %s for %s requests exceeded", rate, class)
	}
	return nil
}

// tooMany is a 429 with Retry-After in whole seconds, rounded up.
func tooMany(c echo.Context, after time.Duration, format string, args ...any) error {
	secs := int64((after + time.Second - 1) / time.Second)
	c.Response().Header().Set(echo.HeaderRetryAfter, strconv.FormatInt(max(secs, 1), 10))
	return problem(http.StatusTooManyRequests, format, args...)
}

// IPExtractor reads the client address: the peer's, unless the peer is a trusted proxy, then
// the nearest address in X-Forwarded-For that is not a trusted proxy. Loopback, link-local and
// private ranges are trusted only when listed (echo trusts them by default), so rotating
// X-Forwarded-For cannot reset a per-address counter (SECURITY-CASES D.29).
func IPExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	return echo.ExtractIPFromXFFHeader(trustOnly(trusted)...)
}

// SchemeExtractor believes X-Forwarded-Proto from the trusted proxies only (it decides HSTS).
func SchemeExtractor(trusted []netip.Prefix) echo.SchemeExtractor {
	if len(trusted) == 0 {
		return echo.ExtractSchemeDirect()
	}
	return echo.ExtractSchemeFromHeaders(trustOnly(trusted)...)
}

func trustOnly(trusted []netip.Prefix) []echo.TrustOption {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return opts
}

func (rt Route) String() string { return fmt.Sprintf("%s %s (%s)", rt.Method, rt.Path, rt.Role) }
