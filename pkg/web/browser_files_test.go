package web_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// ingestItem is a received file as GET /api/ingests lists it.
type ingestItem struct {
	ID               int64   `json:"id"`
	Filename         string  `json:"filename"`
	Status           string  `json:"status"`
	ReportIDs        []int64 `json:"report_ids"`
	TLSReportIDs     []int64 `json:"tls_report_ids"`
	FailureReportIDs []int64 `json:"failure_report_ids"`
}

// kindsText and kindsLinks are what the page should show for a file's reports (upload.js
// kindsOf): the kinds with their counts, and a link to each report.
func (it ingestItem) kindsText() string {
	var parts []string
	for _, k := range []struct {
		label string
		ids   []int64
	}{{"DMARC aggregate", it.ReportIDs}, {"TLS", it.TLSReportIDs}, {"failure", it.FailureReportIDs}} {
		if len(k.ids) > 0 {
			parts = append(parts, fmt.Sprintf("%s ×%d", k.label, len(k.ids)))
		}
	}
	return strings.Join(parts, ", ")
}

func (it ingestItem) kindsLinks() []string {
	var out []string
	for _, k := range []struct {
		path string
		ids  []int64
	}{{"report", it.ReportIDs}, {"tls-report", it.TLSReportIDs}, {"failure", it.FailureReportIDs}} {
		for _, id := range k.ids {
			out = append(out, fmt.Sprintf("#/%s/%d", k.path, id))
		}
	}
	return out
}

// The upload page and the Files page name each file's report kinds with links, as the API's
// report_ids, tls_report_ids and failure_report_ids say; the links open the reports; a report's
// detail page exports that one report's records (the button asks records/csv?report=N).
func TestFileKindsAndReportExportInBrowser(t *testing.T) {
	t.Parallel()
	corpusDir, _ := corpus.ForTest(t)
	base := startApp(t)
	admin := apiLogin(t, base, adminEmail, adminPassword)
	p := newPage(t, base)
	p.login(adminEmail, adminPassword)

	abs := func(s string) string { a, _ := filepath.Abs(s); return a }
	want := map[string]string{ // file → the kinds the upload row names
		"xss-report.xml":   "DMARC aggregate ×1",
		"xss-tls.json":     "TLS ×1",
		"xss-failure.eml":  "failure ×1",
		"multi-report.zip": "DMARC aggregate ×3",
	}
	p.open("#/upload")
	p.run(chromedp.SetUploadFiles(chromedp.CSS(`#upload-input`), []string{abs("testdata/xss-report.xml"), abs("testdata/xss-tls.json"),
		abs("testdata/xss-failure.eml"), filepath.Join(corpusDir, "dmarc_report_reader/tests/fixtures/multi-report.zip")}))
	type row struct {
		Status string   `json:"status"`
		Detail string   `json:"detail"`
		Links  []string `json:"links"`
	}
	var rows map[string]row
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		p.eval(`Object.fromEntries([...document.querySelectorAll('li.upload')].map(li => [li.querySelector('.name').textContent,
			{status: li.dataset.status, detail: li.querySelector('.detail').textContent, links: [...li.querySelectorAll('.detail a')].map(a => a.getAttribute('href'))}]))`, &rows)
		settled := len(rows) == len(want)
		for _, r := range rows {
			settled = settled && r.Status != "sending" && r.Status != "pending"
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not settled after 60s: %v", rows)
		}
	}
	var ingests struct {
		Items []ingestItem `json:"items"`
	}
	admin.get(t, "/api/ingests", url.Values{"page_size": {"100"}}, &ingests)
	byName := map[string]ingestItem{}
	for _, it := range ingests.Items {
		byName[it.Filename] = it
	}
	for name, kinds := range want {
		r, it := rows[name], byName[name]
		if r.Status != "processed" || !strings.HasPrefix(r.Detail, kinds+" (") {
			t.Errorf("upload row %s: %s %q, want processed naming %q", name, r.Status, r.Detail, kinds)
		}
		if it.kindsText() != kinds || !slices.Equal(r.Links, it.kindsLinks()) {
			t.Errorf("upload row %s: links %v; the API says %q with %v", name, r.Links, it.kindsText(), it.kindsLinks())
		}
	}
	checkNoScript(t, p, "upload")

	// The Files page: one row per received file, its kinds and links as the API lists them.
	p.open("#/files")
	var files []struct {
		Name  string   `json:"name"`
		Kinds string   `json:"kinds"`
		Links []string `json:"links"`
	}
	p.eval(`[...document.querySelectorAll('main tbody tr')].map(tr => ({name: tr.querySelector('.file-name').textContent,
		kinds: [...tr.querySelectorAll('.kind')].map(k => k.firstChild.textContent).join(', '),
		links: [...tr.querySelectorAll('.kinds a')].map(a => a.getAttribute('href'))}))`, &files)
	if len(files) != len(ingests.Items) {
		t.Fatalf("the Files page lists %d files, the API %d", len(files), len(ingests.Items))
	}
	for i, f := range files {
		it := ingests.Items[i]
		if f.Name != it.Filename || f.Kinds != it.kindsText() || !slices.Equal(f.Links, it.kindsLinks()) {
			t.Errorf("Files row %d: %q %q %v; API %q %q %v", i, f.Name, f.Kinds, f.Links, it.Filename, it.kindsText(), it.kindsLinks())
		}
	}
	p.shoot("files")
	p.a11y("files")

	// The links open the reports: the TLS one, then the multi-report file's first aggregate one.
	tlsID := byName["xss-tls.json"].TLSReportIDs[0]
	p.run(js(fmt.Sprintf(`document.getElementById('main').dataset.state = ''; document.querySelector('main a[href="#/tls-report/%d"]').click()`, tlsID)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	if h := func() string { var v string; p.eval(`location.hash`, &v); return v }(); h != fmt.Sprintf("#/tls-report/%d", tlsID) {
		t.Errorf("the TLS link went to %s", h)
	}
	repID := byName["multi-report.zip"].ReportIDs[0]
	p.open("#/files")
	p.run(js(fmt.Sprintf(`document.getElementById('main').dataset.state = ''; document.querySelector('main a[href="#/report/%d"]').click()`, repID)),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	if h1 := p.text(`main h1`); !strings.HasPrefix(h1, "Report from ") {
		t.Errorf("the aggregate link opened %q", h1)
	}

	// The report's export buttons: the CSV of this report's records, saved as a file.
	// The notice goes after 5 s: the poll keeps its text.
	saved := func(ext string) string {
		var n string
		p.run(js(`document.getElementById('notices').replaceChildren(); window.__saved = ''`),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`main .export-bar button[data-export="records-%s"]`, ext))),
			chromedp.Poll[chromedp.Void](`(window.__saved = [...document.querySelectorAll('#notices .notice')].map(n => n.textContent).find(s => s.includes('saved')) || '') !== ''`,
				chromedp.WithPollingTimeout(20*time.Second)))
		p.eval(`window.__saved`, &n)
		return n
	}
	mark := p.mark()
	notice := saved("csv")
	wantURL := fmt.Sprintf("GET /api/export/records/csv?report=%d", repID)
	if got := p.urls(mark); !slices.Contains(got, wantURL) {
		t.Errorf("the export button asked %v, want %s", got, wantURL)
	}
	if !strings.HasPrefix(notice, "vigil-records-") || !strings.Contains(notice, ".csv saved") {
		t.Errorf("after the export the page says %q", notice)
	}
	// The same request answers this report's records, every one of them.
	var recs struct {
		Total int64 `json:"total"`
	}
	admin.get(t, fmt.Sprintf("/api/reports/%d/records", repID), nil, &recs)
	req, _ := http.NewRequest(http.MethodGet, base+strings.TrimPrefix(wantURL, "GET "), nil)
	fresh := apiLogin(t, base, adminEmail, adminPassword) // the access token lives 8 s
	req.Header.Set(fresh.header, fresh.value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || int64(len(lines)-1) != recs.Total || recs.Total == 0 {
		t.Fatalf("%s: %d, %d rows (%v); the report has %d records", wantURL, resp.StatusCode, len(lines)-1, err, recs.Total)
	}
	for _, l := range lines[1:] {
		if l[0] != fmt.Sprint(repID) {
			t.Errorf("a row of report %s in the export of report %d", l[0], repID)
		}
	}
	if n := saved("xlsx"); !strings.Contains(n, ".xlsx saved") {
		t.Errorf("after the Excel export the page says %q", n)
	}
	if got := p.urls(mark); !slices.Contains(got, fmt.Sprintf("GET /api/export/records/xlsx?report=%d", repID)) {
		t.Errorf("the Excel button asked %v", got)
	}
	p.shoot("report-detail-export")
	p.a11y("report detail with export")
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// mailBackend is a real SMTP server in the test process (no TLS, no auth: the channel says
// smtp_tls none), keeping what it receives.
type mailBackend struct {
	mu    sync.Mutex
	rcpts []string
	msgs  []string
}

type mailSession struct{ b *mailBackend }

func (b *mailBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{b}, nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error        { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.rcpts = append(s.b.rcpts, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, string(b))
	return err
}
func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// The channel form's own-SMTP-server fields for e-mail channels: shown for e-mail only; the
// API's 422 refusals (a metadata address, a password over a clear connection) show in the
// form; a valid server is saved (the password write-only, kept when the field is left empty)
// and the channel's test mail reaches that server.
func TestChannelSMTPFormInBrowser(t *testing.T) {
	t.Parallel()
	be := &mailBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	base := startApp(t, map[string]string{"VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32"})
	admin := apiLogin(t, base, adminEmail, adminPassword)
	p := newPage(t, base)
	p.login(adminEmail, adminPassword)
	p.open("#/alerts/channels")

	const nf = `form[aria-label="New channel"] `
	hidden := func() bool {
		var v bool
		p.eval(`document.querySelector('form[aria-label="New channel"] fieldset.smtp').hidden`, &v)
		return v
	}
	if !hidden() {
		t.Error("the SMTP fields show for a webhook channel")
	}
	p.run(chromedp.SetValue(chromedp.CSS(nf+`select[name=kind]`), "email"))
	if hidden() {
		t.Fatal("the SMTP fields are hidden for an e-mail channel")
	}
	p.shoot("channel-email-form")
	p.a11y("channel form (e-mail)")

	// empty clears a field as a person would (chromedp's SetValue refuses an empty value).
	empty := func(sel string) chromedp.Action[chromedp.Void] {
		return js(fmt.Sprintf(`document.querySelector(%q).value = ''`, sel))
	}
	submitForm := func(form string) {
		p.run(js(`document.getElementById('notices').replaceChildren()`), chromedp.Click(chromedp.CSS(form+`button[type=submit]`)))
	}
	formError := func(form, says string) {
		t.Helper()
		waitFor(p, fmt.Sprintf(`(document.querySelector('%s.error-box') || {}).textContent?.includes(%q)`, form, says))
	}
	countChannels := func() int {
		var l struct {
			Items []map[string]any `json:"items"`
		}
		admin.get(t, "/alerts/channels", nil, &l)
		return len(l.Items)
	}

	// A cloud metadata address: the API refuses it (422 naming the field) and the form says so.
	p.run(chromedp.SetValue(chromedp.CSS(nf+`input[name=name]`), "ops mail"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=to]`), "ops@example.org"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=from]`), "vigil@example.com"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=smtp_host]`), "169.254.169.254"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=smtp_port]`), port))
	submitForm(nf)
	formError(nf, "config.smtp_host")
	// A password over an unencrypted connection.
	p.run(chromedp.SetValue(chromedp.CSS(nf+`input[name=smtp_host]`), "127.0.0.1"),
		chromedp.SetValue(chromedp.CSS(nf+`select[name=smtp_tls]`), "none"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=smtp_username]`), "vigil"),
		chromedp.SetValue(chromedp.CSS(nf+`input[name=smtp_password]`), "mail-pass"))
	submitForm(nf)
	formError(nf, "config.smtp_tls")
	if n := countChannels(); n != 0 {
		t.Fatalf("%d channels after two refusals", n)
	}
	p.shoot("channel-email-refused")

	// Without credentials, a clear connection to the loopback server is accepted.
	p.run(empty(nf+`input[name=smtp_username]`), empty(nf+`input[name=smtp_password]`))
	submitForm(nf)
	waitFor(p, `document.querySelectorAll('main tbody tr').length === 1`)
	type channel struct {
		ID         int64          `json:"id"`
		Config     map[string]any `json:"config"`
		SecretsSet []string       `json:"secrets_set"`
	}
	var chans struct {
		Items []channel `json:"items"`
	}
	admin.get(t, "/alerts/channels", nil, &chans)
	if len(chans.Items) != 1 {
		t.Fatalf("channels: %+v", chans.Items)
	}
	c := chans.Items[0].Config
	if c["smtp_host"] != "127.0.0.1" || fmt.Sprint(c["smtp_port"]) != port || c["smtp_tls"] != "none" || c["from"] != "vigil@example.com" || len(chans.Items[0].SecretsSet) != 0 {
		t.Errorf("saved channel: %+v", chans.Items[0])
	}
	// Its test mail goes to that server.
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label^="Test channel"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#channel-test-result .badge, #channel-test-result .error-box') !== null`, chromedp.WithPollingTimeout(30*time.Second)))
	if r := p.text(`#channel-test-result`); !strings.Contains(r, "sent") {
		t.Errorf("channel test shows %q", r)
	}
	be.mu.Lock()
	if len(be.msgs) != 1 || !slices.Equal(be.rcpts, []string{"ops@example.org"}) || !strings.Contains(be.msgs[0], "vigil@example.com") {
		t.Errorf("the SMTP server got %d messages for %v", len(be.msgs), be.rcpts)
	}
	be.mu.Unlock()

	// Edit: STARTTLS with a user and password; the password is stored, never shown.
	const ef = `form[aria-label="Edit ops mail"] `
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label="Edit channel ops mail"]`)), chromedp.WaitVisible(chromedp.CSS(ef+`input[name=smtp_host]`)))
	var pre map[string]string
	p.eval(`Object.fromEntries(['smtp_host','smtp_port','smtp_tls','from','smtp_password'].map(n => [n, document.querySelector('form[aria-label="Edit ops mail"] [name=' + n + ']').value]))`, &pre)
	if pre["smtp_host"] != "127.0.0.1" || pre["smtp_port"] != port || pre["smtp_tls"] != "none" || pre["from"] != "vigil@example.com" || pre["smtp_password"] != "" {
		t.Errorf("the edit form starts from %v", pre)
	}
	p.run(chromedp.SetValue(chromedp.CSS(ef+`select[name=smtp_tls]`), "starttls"),
		chromedp.SetValue(chromedp.CSS(ef+`input[name=smtp_username]`), "vigil"),
		chromedp.SetValue(chromedp.CSS(ef+`input[name=smtp_password]`), "mail-pass-secret"))
	submitForm(ef)
	waitFor(p, `document.querySelector('form[aria-label="Edit ops mail"]') === null`)
	get := func() channel {
		var ch channel
		admin.get(t, fmt.Sprintf("/alerts/channels/%d", chans.Items[0].ID), nil, &ch)
		return ch
	}
	ch := get()
	if ch.Config["smtp_tls"] != "starttls" || ch.Config["smtp_username"] != "vigil" || ch.Config["smtp_password"] != nil || !slices.Equal(ch.SecretsSet, []string{"smtp_password"}) {
		t.Errorf("after the edit: %+v", ch)
	}
	waitFor(p, `document.querySelector('main table').textContent.includes('smtp_password: set')`)
	if s := p.text(`main`); strings.Contains(s, "mail-pass-secret") {
		t.Error("the page shows the SMTP password")
	}
	// Edit again leaving the password empty: it is kept; an emptied port goes back to the default.
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label="Edit channel ops mail"]`)), chromedp.WaitVisible(chromedp.CSS(ef+`input[name=smtp_port]`)))
	if hint := p.text(ef + `input[name=smtp_password] + small`); !strings.Contains(hint, "Stored") {
		t.Errorf("the password hint says %q, want that one is stored", hint)
	}
	p.run(empty(ef + `input[name=smtp_port]`))
	submitForm(ef)
	waitFor(p, `document.querySelector('form[aria-label="Edit ops mail"]') === null`)
	if ch := get(); fmt.Sprint(ch.Config["smtp_port"]) != "587" || !slices.Equal(ch.SecretsSet, []string{"smtp_password"}) {
		t.Errorf("after an edit without a password: %+v", ch)
	}
	p.shoot("channels-email")
	p.a11y("channels with an e-mail channel")
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// A page still drawing when the person moves on must not draw over the next one: the overview's
// answers are held back, the channels page opened meanwhile, and when the overview's answers
// arrive the channels page is still what shows.
func TestLatePageDoesNotDrawOverTheNext(t *testing.T) {
	t.Parallel()
	base := startApp(t)
	p := newPage(t, base)
	p.login(adminEmail, adminPassword)
	p.open("#/alerts/channels")
	// Hold every answer the overview asks for by 2 s (the page's requests go through fetch).
	p.run(js(`window.__realFetch = window.__realFetch || window.fetch;
		window.fetch = (url, opts) => String(url).includes('/analytics/') || String(url).includes('/api/domains')
			? new Promise((ok) => setTimeout(() => ok(window.__realFetch(url, opts)), 2000))
			: window.__realFetch(url, opts);`))
	p.run(js(`location.hash = '#/overview'`))
	time.Sleep(300 * time.Millisecond) // the overview has asked, its answers are held
	p.open("#/alerts/channels")
	time.Sleep(3 * time.Second) // the overview's answers have arrived and it has drawn, somewhere
	var got struct {
		Heading string `json:"heading"`
		Form    bool   `json:"form"`
		Ready   string `json:"ready"`
	}
	p.eval(`({heading: document.querySelector('main h1')?.textContent || '', form: !!document.querySelector('main form[aria-label="New channel"]'), ready: document.getElementById('main').dataset.state || ''})`, &got)
	if got.Heading != "Notification channels" || !got.Form || got.Ready != "ready" {
		t.Fatalf("after the late overview answers the page shows %+v, want the channels page", got)
	}
}
