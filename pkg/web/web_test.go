package web_test

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/web"
)

func server() *echo.Echo {
	e := echo.New()
	for _, r := range web.New().Routes() {
		e.Add(r.Method, r.Path, r.Handler)
	}
	return e
}

// The page and its assets carry the dashboard's CSP (no inline script or style, no eval,
// Trusted Types), are revalidated by ETag, and only the listed kinds of file are served.
func TestServe(t *testing.T) {
	t.Parallel()
	e := server()
	get := func(path, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		path, ctype string
		code        int
	}{
		{"/", "text/html", http.StatusOK},
		{"/assets/app.js", "text/javascript", http.StatusOK},
		{"/assets/style.css", "text/css", http.StatusOK},
		{"/assets/chart.umd.min.js", "text/javascript", http.StatusOK},
		{"/assets/icon.svg", "image/svg+xml", http.StatusOK},
		{"/assets/index.html", "", http.StatusNotFound},
		{"/assets/README.md", "", http.StatusNotFound},
		{"/assets/chart.js.LICENSE.md", "", http.StatusNotFound},
		{"/assets/nope.js", "", http.StatusNotFound},
	}
	for _, tc := range tests {
		rec := get(tc.path, "")
		if rec.Code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, rec.Code, tc.code)
			continue
		}
		if tc.code != http.StatusOK {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.ctype)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*"} {
			if strings.Contains(csp, bad) {
				t.Errorf("GET %s: CSP %q allows %s", tc.path, csp, bad)
			}
		}
		for _, want := range []string{"script-src 'self'", "require-trusted-types-for 'script'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %s", tc.path, csp, want)
			}
		}
		etag := rec.Header().Get("ETag")
		if again := get(tc.path, etag); etag == "" || again.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", tc.path, etag, again.Code)
		}
		if other := get(tc.path, `"stale"`); other.Code != http.StatusOK {
			t.Errorf("GET %s with a stale ETag: %d, want 200", tc.path, other.Code)
		}
	}
}

// The page never writes markup: no innerHTML, outerHTML, insertAdjacentHTML or
// document.write in the dashboard's own code (the CSP's Trusted Types would also stop them).
func TestNoHTMLSinks(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("assets/*.js")
	for _, f := range files {
		if filepath.Base(f) == "chart.umd.min.js" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if bytes.Contains(b, []byte(sink)) {
				t.Errorf("%s uses %s", f, sink)
			}
		}
	}
}

// maxShipped is the budget for the JavaScript and CSS the dashboard ships, gzipped.
const maxShipped = 400 << 10

// TestShippedSize measures what a browser downloads (every served .js and .css, gzip -9 each).
func TestShippedSize(t *testing.T) {
	t.Parallel()
	var raw, gz int
	err := fs.WalkDir(os.DirFS("assets"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".js" && filepath.Ext(p) != ".css") {
			return err
		}
		b, err := os.ReadFile(filepath.Join("assets", p))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		w.Write(b)
		w.Close()
		raw += len(b)
		gz += buf.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("JS+CSS shipped: %d bytes, %d bytes gzipped (budget %d)", raw, gz, maxShipped)
	if gz > maxShipped {
		t.Fatalf("JS+CSS is %d bytes gzipped, over the %d budget", gz, maxShipped)
	}
}
