// Package route is the one shape in which a feature package (analytics, enrichment, senders,
// alerting, channels, the dashboard, …) hands its endpoints to the route table in
// pkg/httpapi: method, path, the least role that may call it, and the handler. The table adds
// the guard, rate limits and the 503 of a capability the process was built without. The guard
// leaves the caller in the request (Principal), which handlers also audit under (Record).
package route

import (
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
)

// Route is one endpoint of a feature.
type Route struct {
	Method  string
	Path    string    // full path, e.g. /api/rollup/summary
	Role    auth.Role // auth.Public: no credentials needed
	Handler echo.HandlerFunc
	// Params, when set, are the query parameters the route takes: the guard refuses any other,
	// or one given twice, with a 400 naming it before the handler runs. Nil: the handler checks
	// its own (as pkg/analytics does) or takes any.
	Params *apiparams.Set
}
