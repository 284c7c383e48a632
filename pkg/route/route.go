// Package route is the one shape in which a feature package (analytics, enrichment, senders,
// alerting, channels, the dashboard, …) hands its endpoints to the route table in
// pkg/httpapi: method, path, the least role that may call it, and the handler. The table adds
// the guard, rate limits and the 503 of a capability the process was built without.
package route

import (
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/auth"
)

// Route is one endpoint of a feature.
type Route struct {
	Method  string
	Path    string    // full path, e.g. /api/rollup/summary
	Role    auth.Role // auth.Public: no credentials needed
	Handler echo.HandlerFunc
}
