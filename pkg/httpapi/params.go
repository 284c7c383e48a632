package httpapi

import (
	"net/http"

	"github.com/vigilhq/vigil/pkg/apiparams"
)

// queryParams declares the query parameters each route of this package takes (by the route
// table's method and path); the guard refuses any other, and any given twice, with a 400
// naming it. Feature packages declare theirs on their routes (route.Route's Params) or check
// their own (as pkg/analytics does); a route declared nowhere is not checked. TestQueryParamsMatchSpec keeps this equal to
// the parameters /openapi.json documents.
func queryParams() map[string]apiparams.Set {
	none := apiparams.Declare()
	return map[string]apiparams.Set{
		"GET /health": none, "GET /ready": none, "GET /openapi.json": none,
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
