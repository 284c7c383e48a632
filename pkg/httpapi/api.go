// Package httpapi serves Vigil's REST API (DESIGN.md contract), health endpoints and the
// Asynqmon UI on echo. Handlers only read and enqueue: parsing happens on workers.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
)

// Limits bound what one upload request may carry.
type Limits struct {
	UploadFiles int
	UploadBytes int64
	FileBytes   int64
}

// Pinger is a dependency /ready checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the API needs; Monitoring may be nil (no Asynqmon).
type Deps struct {
	Store      *store.Store
	Ingest     *ingest.Service
	Redis      Pinger
	Monitoring http.Handler
	Limits     Limits
	TempDir    string // where uploads are spooled before they are stored
	Log        *slog.Logger
}

// API holds the handlers' dependencies.
type API struct {
	Deps
	log *slog.Logger
	now func() time.Time
}

// New builds the echo server with every route registered.
func New(d Deps) *echo.Echo {
	a := &API{Deps: d, log: d.Log, now: time.Now}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.Use(middleware.Recover())
	e.Use(a.requestLog)
	a.routes(e)
	return e
}

// routes lists every route in one place.
func (a *API) routes(e *echo.Echo) {
	e.GET("/health", a.health)
	e.GET("/ready", a.ready)
	e.GET("/openapi.json", a.openAPI)

	api := e.Group("/api")
	api.POST("/upload", a.upload)
	api.GET("/ingests/:id", a.getIngest)
	api.GET("/reports", a.listReports)
	api.GET("/reports/:id", a.getReport)
	api.GET("/reports/:id/records", a.listRecords)
	api.GET("/domains", a.listDomains)

	if a.Monitoring != nil {
		h := echo.WrapHandler(a.Monitoring)
		e.Any("/monitoring", h)
		e.Any("/monitoring/*", h)
	}
}

func (a *API) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		lvl := slog.LevelDebug
		if c.Response().Status >= 500 {
			lvl = slog.LevelWarn
		}
		a.log.Log(c.Request().Context(), lvl, "http request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "duration", time.Since(start))
		return nil
	}
}

func (a *API) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 503 naming the dependency that is down, so an orchestrator stops routing here.
func (a *API) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "redis": "ok"}
	status := http.StatusOK
	if err := a.Store.Ping(ctx); err != nil {
		checks["database"], status = err.Error(), http.StatusServiceUnavailable
	}
	if a.Redis != nil {
		if err := a.Redis.Ping(ctx); err != nil {
			checks["redis"], status = err.Error(), http.StatusServiceUnavailable
		}
	}
	state := "ready"
	if status != http.StatusOK {
		state = "unavailable"
	}
	return c.JSON(status, map[string]any{"status": state, "checks": checks})
}

// List is the envelope of every list response (DESIGN.md).
type List[T any] struct {
	Items    []T   `json:"items"`
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
}
