// Package apidocs serves /docs: interactive documentation of the API rendered in the browser
// from /openapi.json by a vendored Swagger UI (no CDN: everything comes from this binary).
package apidocs

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

//go:embed assets
var assets embed.FS

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// CSP is the page's Content-Security-Policy: as strict as the dashboard's (own scripts and
// styles only, no inline script or style, no eval). Swagger UI sets styles through the DOM,
// which CSP does not govern, and draws its icons from data: URLs in its style sheet. "Try it
// out" calls this API (connect-src 'self'). The browser test checks no directive is violated.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Docs holds the embedded files.
type Docs struct{ files map[string]file }

// New reads the embedded files once.
func New() *Docs {
	d := &Docs{files: map[string]file{}}
	entries, _ := assets.ReadDir("assets")
	for _, e := range entries {
		b, err := assets.ReadFile("assets/" + e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" || path.Ext(e.Name()) == ".md" {
			ct = "text/plain; charset=utf-8"
		}
		sum := sha256.Sum256(b)
		d.files[e.Name()] = file{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return d
}

// Routes are the page and its files, public like /openapi.json itself.
func (d *Docs) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/docs", Role: auth.Public, Handler: d.index},
		{Method: http.MethodGet, Path: "/docs/:file", Role: auth.Public, Handler: d.asset},
	}
}

func (d *Docs) index(c echo.Context) error { return d.serve(c, "index.html") }

func (d *Docs) asset(c echo.Context) error {
	if c.Param("file") == "index.html" {
		return echo.ErrNotFound
	}
	return d.serve(c, c.Param("file"))
}

// serve answers one embedded file with the page's CSP, revalidated by ETag (the API's headers
// forbid caching; the bundle is 1.7 MB, so a reload costs a 304).
func (d *Docs) serve(c echo.Context, name string) error {
	f, ok := d.files[name]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentSecurityPolicy, CSP)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	if m := c.Request().Header.Get("If-None-Match"); m != "" && m == f.etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.ctype, f.body)
}
