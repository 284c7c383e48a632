package httpapi

import (
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Content-Security-Policy values: the API answers JSON and nothing on it may load anything;
// Asynqmon's single-page UI needs its inline bootstrap script and Google Fonts.
const (
	apiCSP        = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	monitoringCSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; " +
		"font-src 'self' https://fonts.gstatic.com; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

// securityHeaders runs before routing, so every answer carries them, errors and 404s included
// (SECURITY-CASES D.34). HSTS only over HTTPS (directly or as told by the proxy): browsers
// ignore it on plain HTTP anyway.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		h.Set(echo.HeaderXFrameOptions, "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if strings.HasPrefix(c.Request().URL.Path, "/monitoring") {
			h.Set(echo.HeaderContentSecurityPolicy, monitoringCSP)
		} else {
			h.Set(echo.HeaderContentSecurityPolicy, apiCSP)
		}
		if c.Scheme() == "https" {
			h.Set(echo.HeaderStrictTransportSecurity, "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}

// cors answers browsers from the listed origins only, compared exactly (no patterns, so
// https://vigil.example.com.evil.com is not https://vigil.example.com), never "*" and never
// with credentials: the API authenticates with headers, not cookies.
func cors(origins []string) echo.MiddlewareFunc {
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[strings.ToLower(o)] = true
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOriginFunc: func(origin string) (bool, error) { return allowed[strings.ToLower(origin)], nil },
		AllowMethods:    []string{"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"},
		AllowHeaders:    []string{echo.HeaderAuthorization, "X-API-Key", echo.HeaderContentType},
		ExposeHeaders:   []string{echo.HeaderRetryAfter, "RateLimit-Limit", "RateLimit-Remaining"},
		MaxAge:          600,
	})
}
