package httpapi

import (
	"net/http"

	"github.com/vigilhq/vigil/pkg/apiparams"
)

// queryParams declares the query parameters each route of this package takes (by the route
// table's method and path); the guard refuses any other, and any given twice, with a 400
// naming it. A route missing here is not checked: feature packages check their own (as
// pkg/analytics does) or add their routes here. TestQueryParamsMatchSpec keeps this equal to
// the parameters /openapi.json documents.
func queryParams() map[string]apiparams.Set {
	none := apiparams.Declare()
	page := apiparams.Declare(apiparams.PageNames...)
	return map[string]apiparams.Set{
		"GET /health": none, "GET /ready": none, "GET /openapi.json": none,
		"POST /auth/login": none, "POST /auth/refresh": none, "POST /auth/logout": none,
		"GET /users/me": none, "PATCH /users/me": none,
		"GET /users/api-keys": page, "POST /users/api-keys": none, "DELETE /users/api-keys/:id": none,
		"GET /users": page, "POST /users": none, "GET /users/:id": none, "PATCH /users/:id": none, "DELETE /users/:id": none,
		"GET /audit":                          page.With("action", "outcome", "actor_id", "start", "end"),
		"POST /tasks/trigger/process-reports": none, "GET /tasks/status/:task_id": none,
	}
}

// QueryParams lists the declared parameters of each route, those of this package and those
// feature packages declare on their routes (route.Route's Params), for tests.
func QueryParams() map[string][]string {
	out := map[string][]string{}
	a := &API{Deps: Deps{Monitoring: http.NotFoundHandler()}}
	for _, rt := range a.table() {
		if rt.params != nil {
			out[rt.Method+" "+rt.Path] = rt.params.Names()
		}
	}
	for k, s := range queryParams() {
		out[k] = s.Names()
	}
	return out
}
