package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

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

// problem builds an error the error handler renders as application/problem+json.
func problem(status int, format string, args ...any) error {
	return echo.NewHTTPError(status, fmt.Sprintf(format, args...))
}

// badParam is the 400 for a query parameter; the detail names it (DESIGN.md).
func badParam(name, format string, args ...any) error {
	return problem(http.StatusBadRequest, "parameter %s: %s", name, fmt.Sprintf(format, args...))
}

// RetryAfterUnavailable is the Retry-After, in seconds, of a 503 while the database or Redis
// is down: about the time a restarted server takes to answer again.
const RetryAfterUnavailable = 10

// errorHandler maps every error to a problem document in one place.
func (a *API) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	var invalid *auth.InvalidError
	var locked *auth.LockedError
	switch {
	case errors.As(err, &he):
		status = he.Code
		if m, ok := he.Message.(string); ok {
			detail = m
		} else {
			detail = http.StatusText(status)
		}
		if he.Internal != nil {
			a.log.Debug("http error", "status", status, "err", he.Internal)
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, auth.ErrNotFound):
		status, detail = http.StatusNotFound, err.Error()
	case errors.As(err, &invalid):
		status, detail = http.StatusBadRequest, "parameter "+invalid.Error()
	case errors.As(err, &locked):
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.FormatInt(int64((locked.RetryAfter+time.Second-1)/time.Second), 10))
		status, detail = http.StatusTooManyRequests, locked.Error()
	case errors.Is(err, auth.ErrInvalidCredentials):
		status, detail = http.StatusUnauthorized, auth.ErrInvalidCredentials.Error()
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
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		c.Response().WriteHeader(status)
		return
	}
	if err := c.JSON(status, p); err != nil {
		a.log.Error("write problem", "err", err)
	}
}
