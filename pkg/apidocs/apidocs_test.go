package apidocs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/pkg/apidocs"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// server is the API with no stores: /docs and /openapi.json need none.
func server(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Log: testenv.Logger()}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The page and its files answer with the strict CSP (no inline script or style, no eval),
// revalidate by ETag, and the vendored renderer keeps its licence next to it.
func TestServedFiles(t *testing.T) {
	t.Parallel()
	base := server(t)
	tests := []struct {
		path, ctype string
		status      int
	}{
		{"/docs", "text/html", 200},
		{"/docs/swagger-ui-bundle.js", "text/javascript", 200},
		{"/docs/swagger-ui.css", "text/css", 200},
		{"/docs/docs.js", "text/javascript", 200},
		{"/docs/LICENSE", "text/plain", 200},
		{"/docs/index.html", "application/problem+json", 404},
		{"/docs/..%2fapidocs.go", "application/problem+json", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.ctype)
			}
			if tt.status != 200 {
				return
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if csp != apidocs.CSP || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q, want %q (and nothing unsafe)", csp, apidocs.CSP)
			}
			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			again, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			again.Body.Close()
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("with its ETag: %d, want 304", again.StatusCode)
			}
		})
	}
}

func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipping the browser test: Chromium is not installed (apt-get install chromium, or set VIGIL_TEST_CHROMIUM)")
	return ""
}

// In a real browser, under the page's CSP, Swagger UI renders one block per operation of
// /openapi.json, with no CSP violation, script error or console error.
func TestRendersEveryOperation(t *testing.T) {
	t.Parallel()
	base := server(t)
	spec, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for _, item := range doc.Paths {
		for m := range item {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete", "head", "options"}, m) {
				ops++
			}
		}
	}

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium(t)), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	var mu sync.Mutex
	var errs []string
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			errs = append(errs, "exception: "+ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				errs = append(errs, fmt.Sprintf("console.error: %v", ev.Args))
			}
		case *cdplog.EventEntryAdded:
			// CSP violations are logged with source "security" (or "other"); a 404 of the CSS's
			// source map is a network entry and harmless.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				errs = append(errs, fmt.Sprintf("log %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(base+"/docs"), chromedp.WaitVisible(chromedp.CSS(`.opblock`))); err != nil {
		t.Fatalf("the page drew no operation: %v (errors: %v)", err, errs)
	}
	var n int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, err := chromedp.Run(rctx, chromedp.Evaluate[[]byte](`document.querySelectorAll('.opblock').length`))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatal(err)
		}
		if n >= ops || time.Now().After(deadline) {
			break
		}
	}
	if n != ops {
		t.Errorf("the page shows %d operations, the spec has %d", n, ops)
	}
	// Open one operation: its schemas render too (the part that needs the most of the spec).
	if err := chromedp.Do(rctx, chromedp.Click(chromedp.CSS(`#operations-operations-metrics .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(`#operations-operations-metrics .responses-table`))); err != nil {
		t.Errorf("opening GET /metrics: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
