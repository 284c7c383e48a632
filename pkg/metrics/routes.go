package metrics

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Routes serve /metrics on the API to admins (Prometheus sends an admin API key, or scrapes
// VIGIL_METRICS_ADDR instead, where it needs none). Safe on a nil *Metrics: the route is
// listed, the table answers 503.
func (m *Metrics) Routes(log *slog.Logger) []route.Route {
	var h echo.HandlerFunc
	if m != nil {
		h = echo.WrapHandler(m.Handler(log))
	}
	return []route.Route{{Method: http.MethodGet, Path: "/metrics", Role: auth.Admin, Handler: h}}
}
