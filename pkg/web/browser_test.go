package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// chromium finds Debian's Chromium (VIGIL_TEST_CHROMIUM overrides), or skips the test: the
// browser suite runs wherever Chromium is installed, as .ci/run does.
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

// artefacts is where screenshots go: VIGIL_TEST_ARTIFACTS, or a folder under the temp dir that
// outlives the test (logged), so a person can look at them.
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "vigil-dashboard-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

const (
	adminEmail    = "admin@example.com"
	adminPassword = "browser test admin passphrase"
	viewerEmail   = "viewer@example.com"
	viewerPass    = "browser test viewer passphrase"
	accessTTL     = 8 * time.Second // short, so the page must refresh its token during the test
)

// startApp runs the whole platform in one process (embedded SQLite and Redis) on a loopback port.
// extra adds to (or overrides) the environment.
func startApp(t *testing.T, extra ...map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := map[string]string{
		"VIGIL_DATA_DIR": t.TempDir(), "VIGIL_HTTP_ADDR": addr,
		"VIGIL_ADMIN_EMAIL": adminEmail, "VIGIL_ADMIN_PASSWORD": adminPassword,
		"VIGIL_JWT_ACCESS_TTL": accessTTL.String(),
		// The test's own API calls come on top of the page's; the page's are counted below.
		"VIGIL_RATE_LIMIT_API": "100000/1m", "VIGIL_RATE_LIMIT_AUTH": "1000/1m",
	}
	for _, m := range extra {
		for k, v := range m {
			env[k] = v
		}
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, testenv.Logger()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the server did not stop within 30s")
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not answer /health within 30s")
		}
	}
}

// client calls the API directly, to check the page against the API's own answers.
type client struct {
	base, header, value string
	email, password     string // set: log in again when the short-lived token has expired
}

func apiLogin(t *testing.T, base, email, password string) client {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(base+"/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login %s: %d %v", email, resp.StatusCode, err)
	}
	return client{base: base, header: "Authorization", value: "Bearer " + tok.AccessToken, email: email, password: password}
}

func (c client) get(t *testing.T, path string, q url.Values, v any) int {
	t.Helper()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set(c.header, c.value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized && c.email != "" {
		fresh := apiLogin(t, c.base, c.email, c.password)
		return fresh.get(t, path, q, v)
	}
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	return resp.StatusCode
}

// page drives one browser tab and records what went wrong in it: uncaught exceptions, console
// errors and CSP violations fail the test; requests are counted by path.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	mu   sync.Mutex
	errs []string
	reqs []string // paths the page requested from the API, in order
	full []string // the same requests with their query strings
	axe  string
}

func newPage(t *testing.T, base string) *page {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium(t)), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	axe, err := os.ReadFile("testdata/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	p := &page{t: t, ctx: ctx, base: base, dir: artefacts(t), axe: string(axe)}
	// The first action starts the browser; the listener needs its tab.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			p.errs = append(p.errs, "exception: "+msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				p.errs = append(p.errs, "console.error: "+strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			// Network errors (an expected 401 or 404) are logged too; CSP and script errors are not expected.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				p.errs = append(p.errs, fmt.Sprintf("log %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		case *network.EventRequestWillBeSent:
			if u, err := url.Parse(ev.Request.URL); err == nil && !strings.HasPrefix(u.Path, "/assets/") && u.Path != "/" {
				p.reqs = append(p.reqs, ev.Request.Method+" "+u.Path)
				full := ev.Request.Method + " " + u.Path
				if u.RawQuery != "" {
					full += "?" + u.RawQuery
				}
				p.full = append(p.full, full)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p.run(chromedp.Navigate(base + "/"))
	return p
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v (page errors so far: %v)", err, p.errors())
	}
}

// eval runs JavaScript in the page (awaiting a promise) and decodes its JSON value into out.
func (p *page) eval(js string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: %s: %v (page errors so far: %v)", js, err, p.errors())
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	if err := json.Unmarshal(b, out); err != nil {
		p.t.Fatalf("decode %s: %v", b, err)
	}
}

// js runs a statement in the page, ignoring its value.
func js(code string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](code)
}

func (p *page) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

// requests answers the API requests made since mark (an index from p.mark()).
func (p *page) requests(since int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs[since:])
}

// urls answers the API requests made since mark with their query strings.
func (p *page) urls(since int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.full[since:])
}

func (p *page) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

// open goes to a page of the dashboard and waits until it says it is drawn.
func (p *page) open(hash string) time.Duration {
	p.t.Helper()
	start := time.Now()
	// The previous page's "ready" must not count: clear it with the hash change (a page opened
	// again under the same hash fires no hashchange, and stays ready).
	p.run(js(fmt.Sprintf(`if (location.hash !== %q) { delete document.getElementById('main').dataset.state; location.hash = %q; }`, hash, hash)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	return time.Since(start)
}

func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("text of %s: %v (page errors so far: %v)", sel, err, p.errors())
	}
	return s
}

// shoot saves the page at 1400×900 and 375×800 (the whole page, scrolled).
func (p *page) shoot(name string) {
	p.t.Helper()
	for _, vp := range []struct{ w, h int64 }{{1400, 900}, {375, 800}} {
		p.run(chromedp.EmulateViewport(vp.w, vp.h), chromedp.Sleep(300*time.Millisecond))
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			p.t.Fatal(err)
		}
		f := filepath.Join(p.dir, fmt.Sprintf("%s-%dx%d.png", name, vp.w, vp.h))
		if err := os.WriteFile(f, png, 0o644); err != nil {
			p.t.Fatal(err)
		}
		// Nothing may stick out sideways at phone width: a horizontal scroll bar on the body.
		if vp.w == 375 {
			var over int
			p.eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`, &over)
			if over > 0 {
				p.t.Errorf("%s at 375 px: the page is %d px wider than the screen", name, over)
			}
		}
	}
	p.run(chromedp.EmulateViewport(1400, 900), chromedp.Sleep(200*time.Millisecond))
}

// a11y runs axe-core on the page and fails on serious or critical violations.
func (p *page) a11y(name string) {
	p.t.Helper()
	var loaded bool
	p.eval(`typeof axe !== 'undefined'`, &loaded)
	if !loaded {
		p.run(js(p.axe))
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	p.eval(`axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
		.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))`, &violations)
	for _, v := range violations {
		p.t.Errorf("axe on %s: %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// login fills the log-in form.
func (p *page) login(email, password string) {
	p.t.Helper()
	p.run(chromedp.WaitVisible(chromedp.CSS(`#login-email`)),
		chromedp.SetValue(chromedp.CSS(`#login-email`), email),
		chromedp.SetValue(chromedp.CSS(`#login-password`), password),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
}

// The whole dashboard in a real browser against the real app: log in, upload corpus files and
// a hostile report through the page, every page drawn, filters checked against the API,
// accounts managed, a viewer kept out of admin pages, screenshots and axe on each page.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	corpusDir, _ := corpus.ForTest(t)
	base := startApp(t)
	p := newPage(t, base)
	admin := apiLogin(t, base, adminEmail, adminPassword)

	// Log in: the name and role are shown; the empty state invites an upload.
	p.shoot("login")
	p.a11y("login")
	p.login(adminEmail, adminPassword)
	loggedIn := time.Now()
	if who := p.text(`#who`); !strings.Contains(who, "admin") {
		t.Errorf("header shows %q, want the role admin", who)
	}
	if s := p.text(`main .empty`); !strings.Contains(s, "No reports yet: upload or connect a mailbox") {
		t.Errorf("empty overview says %q", s)
	}

	// Upload corpus files (read in place) and the hostile report through the page.
	files := map[string]string{
		"google.eml":              "processed",
		"mimecast-weird-gzip.eml": "processed",
		"multi-report.zip":        "processed",
		"unused.xml":              "failed",
		"xss-report.xml":          "processed",
		"aol.com!georgestarcher.com!1342497600!1342584000.zlib": "processed",
	}
	paths := []string{
		filepath.Join(corpusDir, "mox/testdata/dmarc-reports/google.eml"),
		filepath.Join(corpusDir, "parsedmarc/samples/aggregate/mimecast-weird-gzip.eml"),
		filepath.Join(corpusDir, "dmarc_report_reader/tests/fixtures/multi-report.zip"),
		filepath.Join(corpusDir, "go-dmarc-analyzer/testdata/unused.xml"),
		filepath.Join(corpusDir, "dmarcgo/testdata/fixtures/aol.com!georgestarcher.com!1342497600!1342584000.zlib"),
	}
	xss, _ := filepath.Abs("testdata/xss-report.xml")
	paths = append(paths, xss)
	p.open("#/upload")
	p.a11y("upload")
	p.run(chromedp.SetUploadFiles(chromedp.CSS(`#upload-input`), paths))
	var statuses map[string][2]string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		p.eval(`Object.fromEntries([...document.querySelectorAll('li.upload')].map(li => [li.querySelector('.name').textContent, [li.dataset.status, li.querySelector('.detail').textContent]]))`, &statuses)
		settled := len(statuses) == len(files)
		for _, s := range statuses {
			settled = settled && s[0] != "sending" && s[0] != "pending"
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not settled after 60s: %v", statuses)
		}
	}
	for name, want := range files {
		if got := statuses[name]; got[0] != want {
			t.Errorf("upload %s: %v, want %s", name, got, want)
		}
	}
	if got := statuses["unused.xml"][1]; got == "" {
		t.Error("the failed file shows no reason")
	}
	p.shoot("upload")

	// The rollups follow through rollup:apply tasks; wait until they count every report.
	const wantReports = 7 // google 1, mimecast 1, multi-report 3, aol 1, xss 1
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var s struct {
			TotalReports int `json:"total_reports"`
		}
		admin.get(t, "/api/rollup/summary", nil, &s)
		if s.TotalReports == wantReports {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollups count %d reports after 30s, want %d", s.TotalReports, wantReports)
		}
	}

	// Overview: its requests and render time, then every filter against the API's answers.
	mark := p.mark()
	took := p.open("#/overview")
	var ms float64
	p.eval(`window.vigilOverviewMs`, &ms)
	loadReqs := p.requests(mark)
	t.Logf("overview: %d API requests per load %v; drawn %.0f ms after the route started, %v from the hash change (cold cache)", len(loadReqs), loadReqs, ms, took)
	mark = p.mark()
	p.open("#/reports")
	took = p.open("#/overview")
	var fetchMs float64
	p.eval(`window.vigilOverviewMs`, &ms)
	p.eval(`window.vigilOverviewFetchMs`, &fetchMs)
	t.Logf("overview again (warm cache): drawn %.0f ms after the route started (answers in after %.0f ms), %v from the hash change", ms, fetchMs, took)
	var timings [][2]any
	p.eval(`performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).slice(-8).map(e => [new URL(e.name).pathname, Math.round(e.duration)])`, &timings)
	t.Logf("overview requests (warm), ms each: %v", timings)
	var drawMs map[string]float64
	p.eval(`window.vigilDrawMs`, &drawMs)
	t.Logf("overview charts drawn in ms each: %v", drawMs)
	checkOverview(t, p, admin, url.Values{})
	p.shoot("overview")
	p.a11y("overview")

	// The domain filter through its control; the others through the advanced panel or the URL.
	// A click on a domain's bar filters by that domain.
	var h string
	var xy [2]float64
	p.eval(`(() => {
		const c = Chart.getChart('chart-domains');
		c.canvas.scrollIntoView({block: 'center'});
		const i = c.data.labels.indexOf('ueber.net');
		const bar = c.getDatasetMeta(0).data[i];
		const r = c.canvas.getBoundingClientRect();
		return [r.left + (bar.base + bar.x) / 2, r.top + bar.y];
	})()`, &xy)
	p.run(js(`document.getElementById('main').dataset.state = ''`), chromedp.MouseClickXY(xy[0], xy[1]),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	checkOverview(t, p, admin, url.Values{"domain": {"ueber.net"}})
	p.eval(`location.hash`, &h)
	if !strings.Contains(h, "domain=ueber.net") {
		t.Errorf("a click on the ueber.net bar went to %s", h)
	}
	p.open("#/overview")

	// Choosing a domain applies it at once (SetValue fires the change event a person's choice does).
	p.run(js(`document.getElementById('main').dataset.state = ''`),
		chromedp.SetValue(chromedp.CSS(`select[name=domain]`), "example.com"),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	checkOverview(t, p, admin, url.Values{"domain": {"example.com"}})
	p.eval(`location.hash`, &h)
	if !strings.Contains(h, "domain=example.com") {
		t.Errorf("the domain filter is not in the URL: %s", h)
	}
	p.open("#/overview")
	p.run(js(`document.querySelector('details').open = true`),
		chromedp.SetValue(chromedp.CSS(`input[name=org_name]`), "google.com"),
		js(`document.getElementById('main').dataset.state = ''`),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	checkOverview(t, p, admin, url.Values{"org_name": {"google.com"}})
	p.shoot("overview-filtered")
	for _, f := range []url.Values{
		{"days": {"7"}}, {"days": {"30"}}, {"days": {"90"}},
		{"start": {"2024-01-01"}, "end": {"2024-06-30"}},
		{"source_ip": {"192.0.2.66"}}, {"source_ip_range": {"192.0.2.0/24"}},
		{"dkim_result": {"fail"}}, {"spf_result": {"pass"}}, {"disposition": {"reject"}},
		{"domain": {"xss.example"}, "disposition": {"none"}},
	} {
		p.open("#/overview?" + f.Encode())
		checkOverview(t, p, admin, f)
	}

	// Auto-refresh: one round of the seven rollup requests per 30 s, none while paused.
	p.open("#/overview")
	mark = p.mark()
	time.Sleep(31 * time.Second)
	refreshReqs := apiOnly(p.requests(mark))
	t.Logf("overview: %d API requests per auto-refresh %v", len(refreshReqs), refreshReqs)
	if len(refreshReqs) != 7 {
		t.Errorf("one auto-refresh made %d API requests, want 7: %v", len(refreshReqs), refreshReqs)
	}
	p.run(chromedp.Click(chromedp.CSS(`.refresh button`)))
	mark = p.mark()
	time.Sleep(31 * time.Second)
	if r := apiOnly(p.requests(mark)); len(r) != 0 {
		t.Errorf("paused, the overview still asked %v", r)
	}
	p.run(chromedp.Click(chromedp.CSS(`.refresh button`))) // leave it running for the next tests

	// Reports: every report listed, the hostile one as text, sorting, a detail with every record.
	p.open("#/reports")
	var rows int
	p.eval(`document.querySelectorAll('main tbody tr').length`, &rows)
	if rows != wantReports {
		t.Errorf("reports table has %d rows, want %d", rows, wantReports)
	}
	checkNoXSS(t, p)
	p.shoot("reports")
	p.a11y("reports")
	p.run(js(`[...document.querySelectorAll('th button.sort')].find(b => b.textContent.startsWith('Messages')).click()`),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	var counts []string
	p.eval(`[...document.querySelectorAll('main tbody tr')].map(tr => tr.children[4].textContent)`, &counts)
	if len(counts) < 2 || !sortedNumbers(counts) {
		t.Errorf("sorted by messages ascending: %v", counts)
	}
	// The order is the API's (sort=messages over all reports), not the page's own.
	var shown []string
	p.eval(`[...document.querySelectorAll('main tbody tr th a')].map(a => a.getAttribute('href'))`, &shown)
	var bySize struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
	}
	admin.get(t, "/api/reports", url.Values{"sort": {"messages"}}, &bySize)
	var want []string
	for _, r := range bySize.Items {
		want = append(want, fmt.Sprintf("#/report/%d", r.ID))
	}
	if !slices.Equal(shown, want) {
		t.Errorf("reports sorted by messages: page %v, API %v", shown, want)
	}
	if h := func() string { var v string; p.eval(`location.hash`, &v); return v }(); !strings.Contains(h, "sort=messages") || !strings.Contains(h, "dir=asc") {
		t.Errorf("the sort is not in the URL: %s", h)
	}
	var reports struct {
		Items []struct {
			ID          int64  `json:"id"`
			OrgName     string `json:"org_name"`
			RecordCount int    `json:"record_count"`
		} `json:"items"`
	}
	admin.get(t, "/api/reports", url.Values{"domain": {"xss.example"}}, &reports)
	if len(reports.Items) != 1 {
		t.Fatalf("API lists %d xss.example reports", len(reports.Items))
	}
	p.run(js(fmt.Sprintf(`document.getElementById('main').dataset.state = ''; document.querySelector('a[href="#/report/%d"]').click()`, reports.Items[0].ID)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	if h1 := p.text(`main h1`); h1 != "Report from <img src=x onerror=window.__xss=1> for xss.example" {
		t.Errorf("detail heading %q", h1)
	}
	var recRows int
	p.eval(`document.querySelectorAll('main table tbody tr').length`, &recRows)
	if recRows != reports.Items[0].RecordCount {
		t.Errorf("detail shows %d records, want %d", recRows, reports.Items[0].RecordCount)
	}
	detail := p.text(`main`)
	for _, want := range []string{"reject", "quarantine", "50", "<img src=y onerror=window.__xss=4>", "<svg onload=window.__xss=3>", "s=s2", "other.example", "mfrom", "softfail", "<i>bounce.xss.example"} {
		if !strings.Contains(detail, want) {
			t.Errorf("report detail lacks %q", want)
		}
	}
	checkNoXSS(t, p)
	p.shoot("report-detail")
	p.a11y("report detail")

	// Admin pages: create a user and an API key; the key works once copied.
	p.open("#/admin/users")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form input[name=email]`), viewerEmail),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=name]`), "Vera Viewer"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=password]`), viewerPass),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=role]`), "viewer"),
		chromedp.Click(chromedp.CSS(`form.form button[type=submit]`)))
	p.run(chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('main tbody th')].some(th => th.textContent === %q)`, viewerEmail), chromedp.WithPollingTimeout(10*time.Second)))
	p.shoot("users")
	p.a11y("users")
	p.open("#/keys")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form input[name=name]`), "browser script"),
		chromedp.Click(chromedp.CSS(`form.form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-key`)))
	key := p.text(`#new-key`)
	var me struct {
		Email string `json:"email"`
	}
	if code := (client{base: base, header: "X-API-Key", value: key}).get(t, "/users/me", nil, &me); code != http.StatusOK || me.Email != adminEmail {
		t.Errorf("the key shown (%q) answers %d as %q", key, code, me.Email)
	}
	p.shoot("keys")
	p.a11y("keys")
	p.open("#/admin/mailboxes")
	p.shoot("mailboxes")
	p.a11y("mailboxes")
	p.open("#/admin/audit")
	if s := p.text(`main table`); !strings.Contains(s, "login") {
		t.Errorf("audit log shows no login: %.200s", s)
	}
	p.shoot("audit")
	p.a11y("audit")
	p.run(chromedp.Click(chromedp.CSS(`#who button[aria-label^="Help"]`)), chromedp.WaitVisible(chromedp.CSS(`#help`)))
	p.shoot("help")
	p.a11y("help")
	p.run(chromedp.KeyEvent("\x1b"), chromedp.WaitNotPresent(chromedp.CSS(`#help`)))
	// Dark theme on the overview.
	p.open("#/overview")
	p.run(chromedp.Click(chromedp.CSS(`#who button[aria-label^="Switch"]`)), chromedp.Sleep(200*time.Millisecond))
	p.shoot("overview-dark")
	p.a11y("overview (dark)")
	p.run(chromedp.Click(chromedp.CSS(`#who button[aria-label^="Switch"]`)))

	// The access token lived accessTTL; the page refreshed it before it expired and kept working.
	if since := time.Since(loggedIn); since < 2*accessTTL {
		t.Fatalf("test ran %v, not long enough to see a refresh", since)
	}
	var refreshes, retried int
	for _, r := range p.requests(0) {
		if r == "POST /auth/refresh" {
			refreshes++
		}
	}
	if refreshes == 0 {
		t.Error("the page never refreshed its access token")
	}
	t.Logf("token refreshed %d times in %v (access token lifetime %v); %d retried requests", refreshes, time.Since(loggedIn).Round(time.Second), accessTTL, retried)

	// A viewer: no admin or upload pages offered, an admin page refused, and the API agrees.
	p.run(chromedp.Click(chromedp.CSS(`#who button.secondary`)))
	p.login(viewerEmail, viewerPass)
	nav := p.text(`#nav`)
	for _, hidden := range []string{"Users", "Mailboxes", "Audit log", "Upload", "Queue monitor"} {
		if strings.Contains(nav, hidden) {
			t.Errorf("a viewer's menu offers %s: %q", hidden, nav)
		}
	}
	if who := p.text(`#who`); !strings.Contains(who, "Vera Viewer") || !strings.Contains(who, "viewer") {
		t.Errorf("header shows %q, want the viewer's name and role", who)
	}
	mark = p.mark()
	p.run(js(`location.hash = '#/admin/users'`), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	if h1 := p.text(`main h1`); h1 != "Not allowed" {
		t.Errorf("a viewer on the users page sees %q", h1)
	}
	if r := apiOnly(p.requests(mark)); len(r) != 0 {
		t.Errorf("the refused page still asked the API: %v", r)
	}
	p.shoot("viewer-refused")
	if code := apiLogin(t, base, viewerEmail, viewerPass).get(t, "/users", nil, nil); code != http.StatusForbidden {
		t.Errorf("GET /users as a viewer: %d, want 403", code)
	}
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// apiOnly keeps the data requests (not token refreshes).
func apiOnly(reqs []string) []string {
	return slices.DeleteFunc(reqs, func(s string) bool { return strings.Contains(s, "/auth/") })
}

func sortedNumbers(s []string) bool {
	prev := math.Inf(-1)
	for _, v := range s {
		var n float64
		fmt.Sscan(strings.ReplaceAll(v, ",", ""), &n)
		if n < prev {
			return false
		}
		prev = n
	}
	return true
}

// checkNoXSS: the hostile strings are text, and none of their code ran.
func checkNoXSS(t *testing.T, p *page) {
	t.Helper()
	var res struct {
		Ran      any  `json:"ran"`
		Injected int  `json:"injected"`
		Shown    bool `json:"shown"`
	}
	p.eval(`({ran: window.__xss ?? null,
		injected: document.querySelectorAll('main img, main svg, main script, main b, main i').length,
		shown: document.getElementById('main').textContent.includes('<img src=x onerror=window.__xss=1>')})`, &res)
	if res.Ran != nil || res.Injected != 0 || !res.Shown {
		t.Errorf("hostile report: script ran %v, %d elements injected, shown as text %v", res.Ran, res.Injected, res.Shown)
	}
}

type chartJSON struct {
	Labels []string     `json:"labels"`
	Data   [][]*float64 `json:"data"`
}

// checkOverview compares the cards and each chart on the page with what the API answers for
// the same filters (or the empty state, when nothing matches).
func checkOverview(t *testing.T, p *page, c client, f url.Values) {
	t.Helper()
	var hash string
	p.eval(`location.hash`, &hash)
	var sum struct {
		TotalReports  int64    `json:"total_reports"`
		TotalMessages int64    `json:"total_messages"`
		PassRate      *float64 `json:"dmarc_pass_rate"`
		Dispositions  struct{ None, Quarantine, Reject, Pass, Other float64 }
	}
	c.get(t, "/api/rollup/summary", f, &sum)
	if sum.TotalReports == 0 {
		if s := p.text(`main .empty`); !strings.Contains(s, "Nothing matches these filters") {
			t.Errorf("%s: nothing matches, but the page shows %q", hash, s)
		}
		return
	}
	var got map[string]chartJSON
	p.eval(`Object.fromEntries(['timeline','domains','sources','dispositions','alignment','policy','trend','orgs'].map(n => {
		const c = Chart.getChart('chart-' + n);
		return [n, {labels: c.data.labels.map(String), data: c.data.datasets.map(d => d.data)}];
	}))`, &got)
	want := expectedCharts(t, c, f)
	for name, w := range want {
		g := got[name]
		if !slices.Equal(g.Labels, w.Labels) {
			t.Errorf("%s: chart %s labels %v, API %v", hash, name, g.Labels, w.Labels)
			continue
		}
		if !sameData(g.Data, w.Data) {
			t.Errorf("%s: chart %s data %v, API %v", hash, name, show(g.Data), show(w.Data))
		}
	}
	cards := p.text(`.stats`)
	if !strings.Contains(cards, fmt.Sprintf("%d", sum.TotalReports)) {
		t.Errorf("%s: cards %q lack %d reports", hash, cards, sum.TotalReports)
	}
	if sum.PassRate != nil && !strings.Contains(cards, fmt.Sprintf("%.1f %%", *sum.PassRate*100)) {
		t.Errorf("%s: cards %q lack the pass rate %.1f %%", hash, cards, *sum.PassRate*100)
	}
	if canvases := 8; len(got) != canvases {
		t.Errorf("%s: %d charts drawn, want %d", hash, len(got), canvases)
	}
}

func show(d [][]*float64) [][]any {
	out := make([][]any, len(d))
	for i, s := range d {
		for _, v := range s {
			if v == nil {
				out[i] = append(out[i], nil)
			} else {
				out[i] = append(out[i], *v)
			}
		}
	}
	return out
}

func sameData(a, b [][]*float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			x, y := a[i][j], b[i][j]
			if (x == nil) != (y == nil) || (x != nil && math.Abs(*x-*y) > 0.006) {
				return false
			}
		}
	}
	return true
}

func fl(v float64) *float64 { return &v }

// expectedCharts asks the API what each chart should show, independently of the page's code.
func expectedCharts(t *testing.T, c client, f url.Values) map[string]chartJSON {
	t.Helper()
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range f {
			q[kk] = vv
		}
		q.Set(k, v)
		return q
	}
	var timeline struct {
		Points []struct {
			Start      string  `json:"start"`
			Pass, Fail float64 `json:"-"`
			P          float64 `json:"dmarc_pass_messages"`
			F          float64 `json:"dmarc_fail_messages"`
		} `json:"points"`
	}
	c.get(t, "/api/rollup/timeline", with("interval", interval(f)), &timeline)
	var policy struct {
		Items []struct {
			Domain    string  `json:"domain"`
			Matched   float64 `json:"matched_messages"`
			Unmatched float64 `json:"unmatched_messages"`
			Published []struct {
				Policy   string  `json:"policy"`
				Messages float64 `json:"messages"`
				Matched  float64 `json:"matched_messages"`
			} `json:"published"`
		} `json:"items"`
	}
	c.get(t, "/api/rollup/policy", with("page_size", "100"), &policy)
	type passFail struct {
		Name string  `json:"-"`
		IP   string  `json:"source_ip"`
		Org  string  `json:"org_name"`
		P    float64 `json:"dmarc_pass_messages"`
		F    float64 `json:"dmarc_fail_messages"`
	}
	var sources, orgs struct {
		Items []passFail `json:"items"`
	}
	c.get(t, "/api/rollup/sources", with("limit", "10"), &sources)
	c.get(t, "/api/rollup/top-organizations", with("limit", "10"), &orgs)
	var sum struct {
		D struct{ None, Quarantine, Reject, Pass, Other float64 } `json:"dispositions"`
	}
	c.get(t, "/api/rollup/summary", f, &sum)
	type share struct {
		Messages float64 `json:"messages"`
	}
	var br struct {
		Both     share `json:"both"`
		DKIMOnly share `json:"dkim_only"`
		SPFOnly  share `json:"spf_only"`
		Neither  share `json:"neither"`
	}
	c.get(t, "/api/rollup/alignment-breakdown", f, &br)
	var trend struct {
		Points []struct {
			Date string   `json:"date"`
			Rate *float64 `json:"failure_rate"`
			Avg  *float64 `json:"moving_average_7d"`
		} `json:"points"`
	}
	c.get(t, "/api/rollup/failure-trend", f, &trend)

	out := map[string]chartJSON{}
	two := func(labels []string, a, b []float64) chartJSON {
		cj := chartJSON{Labels: labels, Data: [][]*float64{{}, {}}}
		for i := range a {
			cj.Data[0] = append(cj.Data[0], fl(a[i]))
			cj.Data[1] = append(cj.Data[1], fl(b[i]))
		}
		return cj
	}
	var l []string
	var a, b []float64
	for _, p := range timeline.Points {
		l, a, b = append(l, p.Start), append(a, p.P), append(b, p.F)
	}
	out["timeline"] = two(l, a, b)
	l, a, b = nil, nil, nil
	byPolicy := map[string][2]float64{}
	var order []string
	for i, d := range policy.Items {
		if i < 10 {
			l, a, b = append(l, d.Domain), append(a, d.Matched), append(b, d.Unmatched)
		}
		for _, p := range d.Published {
			k := "p=" + p.Policy
			if p.Policy == "" {
				k = "p=(none)"
			}
			if _, ok := byPolicy[k]; !ok {
				order = append(order, k)
			}
			e := byPolicy[k]
			byPolicy[k] = [2]float64{e[0] + p.Matched, e[1] + p.Messages - p.Matched}
		}
	}
	out["domains"] = two(l, a, b)
	a, b = nil, nil
	for _, k := range order {
		a, b = append(a, byPolicy[k][0]), append(b, byPolicy[k][1])
	}
	out["policy"] = two(order, a, b)
	for name, items := range map[string][]passFail{"sources": sources.Items, "orgs": orgs.Items} {
		l, a, b = nil, nil, nil
		for _, x := range items {
			label := x.IP
			if name == "orgs" {
				label = x.Org
			}
			l, a, b = append(l, label), append(a, x.P), append(b, x.F)
		}
		out[name] = two(l, a, b)
	}
	d := sum.D
	out["dispositions"] = chartJSON{Labels: []string{"none", "quarantine", "reject", "pass", "other"},
		Data: [][]*float64{{fl(d.None), fl(d.Quarantine), fl(d.Reject), fl(d.Pass), fl(d.Other)}}}
	out["alignment"] = chartJSON{Labels: []string{"Both", "DKIM only", "SPF only", "Neither"},
		Data: [][]*float64{{fl(br.Both.Messages), fl(br.DKIMOnly.Messages), fl(br.SPFOnly.Messages), fl(br.Neither.Messages)}}}
	tr := chartJSON{Data: [][]*float64{{}, {}}}
	pctOf := func(v *float64) *float64 {
		if v == nil {
			return nil
		}
		return fl(*v * 100)
	}
	for _, p := range trend.Points {
		tr.Labels = append(tr.Labels, p.Date)
		tr.Data[0] = append(tr.Data[0], pctOf(p.Rate))
		tr.Data[1] = append(tr.Data[1], pctOf(p.Avg))
	}
	out["trend"] = tr
	return out
}

// interval is the series interval the page picks for a window (overview.js interval()).
func interval(f url.Values) string {
	var days float64
	if v := f.Get("days"); v != "" {
		fmt.Sscan(v, &days)
	} else if f.Get("start") != "" && f.Get("end") != "" {
		s, _ := time.Parse("2006-01-02", f.Get("start"))
		e, _ := time.Parse("2006-01-02", f.Get("end"))
		days = e.Sub(s).Hours() / 24
	}
	switch {
	case days == 0:
		return "month"
	case days <= 100:
		return "day"
	case days <= 730:
		return "week"
	}
	return "month"
}
