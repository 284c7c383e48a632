package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the one description of the API; TestOpenAPIMatchesRoutes keeps it honest.
//
//go:embed openapi.json
var openAPISpec []byte

func (a *API) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPISpec)
}
