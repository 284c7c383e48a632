// Package web serves the dashboard: a single page (index.html) and its scripts, styles and the
// vendored charting library, all embedded in the binary with go:embed so `go run ./cmd/api`
// shows it with nothing else installed and nothing is fetched from elsewhere at run time.
//
// The page routes with the URL fragment (/#/reports?page=2), so the dashboard adds exactly two
// routes (/ and /assets/{file}) and never answers for an API path: an unknown /api/... stays a
// 404 problem rather than an HTML page. Everything the dashboard shows comes from the public
// API with the user's bearer token; this package has no data access of its own.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed assets
var assets embed.FS

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// CSP is the dashboard's Content-Security-Policy: its own scripts, styles and images only, no
// inline script or style, no eval, and Trusted Types required, so no string can reach an HTML
// sink such as innerHTML (report fields are attacker-controlled: the code renders them with
// textContent). connect-src 'self' keeps the page talking to this API only.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// served are the extensions of files answered under /assets/: licences and notes kept beside
// the vendored library are not.
var served = map[string]bool{".js": true, ".css": true, ".svg": true}

// file is one embedded asset with its validator.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// Site serves the embedded dashboard.
type Site struct {
	files map[string]file // by name under assets/
}

// New reads the embedded assets once.
func New() *Site {
	s := &Site{files: map[string]file{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		ext := path.Ext(name)
		if !served[ext] && name != "index.html" {
			return nil
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(ext)
		if ext == ".js" { // some systems' MIME tables say text/plain; modules need a JS type
			ctype = "text/javascript; charset=utf-8"
		}
		s.files[name] = file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil { // the FS is compiled in: failing to read it is a build defect
		panic("web: reading embedded assets: " + err.Error())
	}
	return s
}

// Routes lists the dashboard's endpoints. A nil *Site still lists them (for the route table).
func (s *Site) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/", Role: auth.Public, Handler: s.index},
		{Method: http.MethodGet, Path: "/assets/:file", Role: auth.Public, Handler: s.asset},
	}
}

func (s *Site) index(c echo.Context) error { return s.serve(c, "index.html") }

func (s *Site) asset(c echo.Context) error {
	name := c.Param("file")
	if name == "index.html" { // only at /
		return echo.ErrNotFound
	}
	return s.serve(c, name)
}

// serve answers one embedded file with the dashboard's CSP. The API's headers (set before
// routing) forbid caching; assets are revalidated by ETag instead, so a reload after an
// upgrade never mixes versions and an unchanged file costs a 304.
func (s *Site) serve(c echo.Context, name string) error {
	f, ok := s.files[name]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentSecurityPolicy, CSP)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == f.etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.ctype, f.body)
}
