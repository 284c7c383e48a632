package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/store"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// ProblemTypeBase prefixes every problem type: a tag URI (RFC 4151), the kind of URI RFC 9457
// (section 3.1.1) suggests for types that are identifiers rather than pages. The kinds are
// listed in docs/api.md and the Problem schema of /openapi.json; they never change meaning.
const ProblemTypeBase = "tag:vigilhq.github.io,2026:problem:"

// Problem kinds beyond those of pkg/apiparams (bad-parameter, unknown-parameter,
// repeated-parameter, unknown-field). A status without a more precise kind has its own
// (statusKinds).
const (
	kindBadRequest   apiparams.Kind = "bad-request"
	kindLocked       apiparams.Kind = "locked"
	kindRateLimited  apiparams.Kind = "rate-limited"
	kindInvalidLogin apiparams.Kind = "invalid-credentials"
)

// statusKinds is the kind of a problem by its status, when nothing more precise is known.
var statusKinds = map[int]apiparams.Kind{
	http.StatusBadRequest:            kindBadRequest,
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not-found",
	http.StatusMethodNotAllowed:      "method-not-allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too-large",
	http.StatusUnsupportedMediaType:  "unsupported-media-type",
	http.StatusUnprocessableEntity:   "invalid-settings",
	http.StatusTooManyRequests:       kindRateLimited,
	http.StatusInternalServerError:   "internal",
	http.StatusServiceUnavailable:    "unavailable",
}

// ProblemKinds lists every kind a problem may have, for the documentation test.
func ProblemKinds() []string {
	kinds := []string{string(apiparams.KindBadParameter), string(apiparams.KindUnknownParameter),
		string(apiparams.KindRepeatedParameter), string(apiparams.KindUnknownField), string(kindLocked), string(kindInvalidLogin)}
	for _, k := range statusKinds {
		kinds = append(kinds, string(k))
	}
	return kinds
}

// problemType is the type URI of a kind ("" for about:blank).
func problemType(k apiparams.Kind) string {
	if k == "" {
		return "about:blank"
	}
	return ProblemTypeBase + string(k)
}

// problem builds an error the error handler renders as application/problem+json.
var problem = apiparams.Problem

// RetryAfterUnavailable is the Retry-After, in seconds, of a 503 while the database or Redis
// is down: about the time a restarted server takes to answer again.
const RetryAfterUnavailable = 10

// errorHandler maps every error to a problem document in one place.
func (a *API) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, "internal error"
	var kind apiparams.Kind
	var he *echo.HTTPError
	var invalid *auth.InvalidError
	var locked *auth.LockedError
	switch {
	case errors.As(err, &he):
		status = he.Code
		if m, ok := he.Message.(string); ok && m != http.StatusText(status) {
			detail = m
		} else {
			detail = routerDetail(c, status)
		}
		if !errors.As(he.Internal, &kind) && he.Internal != nil {
			a.log.Debug("http error", "status", status, "err", he.Internal)
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, auth.ErrNotFound):
		status, detail = http.StatusNotFound, err.Error()
	case errors.As(err, &invalid):
		status, detail, kind = http.StatusBadRequest, "parameter "+invalid.Error(), apiparams.KindBadParameter
	case errors.As(err, &locked):
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.FormatInt(int64((locked.RetryAfter+time.Second-1)/time.Second), 10))
		status, detail, kind = http.StatusTooManyRequests, locked.Error(), kindLocked
	case errors.Is(err, auth.ErrInvalidCredentials):
		status, detail, kind = http.StatusUnauthorized, auth.ErrInvalidCredentials.Error(), kindInvalidLogin
	case errors.Is(err, auth.ErrUnauthenticated):
		status, detail = http.StatusUnauthorized, "invalid, expired or revoked token"
	case errors.Is(err, auth.ErrForbidden):
		status, detail = http.StatusForbidden, err.Error()
	case errors.Is(err, auth.ErrConflict):
		status, detail = http.StatusConflict, err.Error()
	case errors.Is(err, auth.ErrThrottleUnavailable):
		a.log.Error("login refused: throttle unavailable", "err", err)
		c.Response().Header().Set(echo.HeaderRetryAfter, "30")
		status, detail = http.StatusServiceUnavailable, auth.ErrThrottleUnavailable.Error()
	case store.IsUnavailable(err):
		// The database or Redis is down or restarting: nothing was half-done (an upload is
		// stored in one commit or not at all), and the same request will work once it is back.
		a.log.Warn("request refused: a dependency is unavailable", "method", c.Request().Method, "path", c.Path(), "err", err)
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(RetryAfterUnavailable))
		status, detail = http.StatusServiceUnavailable, "a service this request needs (the database or the queue) is unavailable; try again shortly"
	default:
		a.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if kind == "" {
		kind = statusKinds[status]
	}
	p := Problem{Type: problemType(kind), Title: http.StatusText(status), Status: status, Detail: detail}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		c.Response().WriteHeader(status)
		return
	}
	if err := c.JSON(status, p); err != nil {
		a.log.Error("write problem", "err", err)
	}
}

// routerDetail says more than the title for the errors echo raises itself (no route, a
// method the route does not take) and any other bare status.
func routerDetail(c echo.Context, status int) string {
	req := c.Request()
	switch status {
	case http.StatusNotFound:
		return fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path)
	case http.StatusMethodNotAllowed:
		if allow := c.Response().Header().Get(echo.HeaderAllow); allow != "" {
			return fmt.Sprintf("%s %s is not served; the methods allowed are %s", req.Method, req.URL.Path, allow)
		}
		return fmt.Sprintf("%s %s is not served", req.Method, req.URL.Path)
	}
	return http.StatusText(status)
}
