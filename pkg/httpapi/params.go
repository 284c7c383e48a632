package httpapi

import (
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/store"
)

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// queryParams declares the query parameters each route of this package takes (by the route
// table's method and path); the guard refuses any other, and any given twice, with a 400
// naming it. A route missing here is not checked: feature packages check their own (as
// pkg/analytics does) or add their routes here. TestQueryParamsMatchSpec keeps this equal to
// the parameters /openapi.json documents.
func queryParams() map[string]apiparams.Set {
	none := apiparams.Declare()
	page := apiparams.Declare(apiparams.PageNames...)
	filtered := apiparams.FilterSet.With(apiparams.PageNames...)
	return map[string]apiparams.Set{
		"GET /health": none, "GET /ready": none, "GET /openapi.json": none,
		"POST /auth/login": none, "POST /auth/refresh": none, "POST /auth/logout": none,
		"GET /api/ingests/:id": none, "GET /api/reports": filtered.With("sort"), "GET /api/reports/:id": none,
		// Records take the record-level filters only: the report is already chosen.
		"GET /api/reports/:id/records": page.With("source_ip", "source_ip_range", "dkim_result", "spf_result", "disposition", "sender", "country", "asn"),
		"GET /api/domains":             filtered,
		"GET /users/me":                none, "PATCH /users/me": none,
		"GET /users/api-keys": page, "POST /users/api-keys": none, "DELETE /users/api-keys/:id": none,
		"POST /api/upload": none,
		"GET /users":       page, "POST /users": none, "GET /users/:id": none, "PATCH /users/:id": none, "DELETE /users/:id": none,
		"GET /audit":                          page.With("action", "outcome", "actor_id", "start", "end"),
		"POST /tasks/trigger/email-ingestion": none, "POST /tasks/trigger/process-reports": none,
		"GET /tasks/status/:task_id": none,
		"GET /api/mailboxes":         page, "POST /api/mailboxes": none,
		"GET /api/mailboxes/:id": none, "PATCH /api/mailboxes/:id": none, "DELETE /api/mailboxes/:id": none,
		"POST /api/mailboxes/:id/test": none, "GET /api/ingests/:id/raw": none,
	}
}

// QueryParams lists the declared parameters of each route, for tests.
func QueryParams() map[string][]string {
	out := map[string][]string{}
	for k, s := range queryParams() {
		out[k] = s.Names()
	}
	return out
}

func pageParams(c echo.Context) (store.Page, error) {
	p := store.Page{Number: 1, Size: defaultPageSize}
	if v := c.QueryParam("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, badParam("page", "want a whole number from 1 to 1000000")
		}
		p.Number = n
	}
	if v := c.QueryParam("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, badParam("page_size", "want a whole number from 1 to %d", maxPageSize)
		}
		p.Size = n
	}
	return p, nil
}

func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id < 1 {
		return 0, badParam(name, "want a whole number from 1")
	}
	return id, nil
}

// pathParam is a path segment decoded: generated clients percent-encode every path parameter
// (a task id's colons become %3A), and echo hands over the segment as it came.
func pathParam(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "", badParam(name, "not a valid percent-encoded path segment")
	}
	return v, nil
}
