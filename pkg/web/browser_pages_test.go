package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/pkg/testenv"
)

// send calls the API with a JSON body (nil: none) and decodes a JSON answer into out.
func (c client) send(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set(c.header, c.value)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized && c.email != "" { // the short-lived token ran out
		return apiLogin(t, c.base, c.email, c.password).send(t, method, path, body, out)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// upload posts files as the dashboard does and answers the ingest ids.
func (c client) upload(t *testing.T, files map[string][]byte) []int64 {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for name, data := range files {
		fw, _ := w.CreateFormFile("files", name)
		fw.Write(data)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/api/upload", &buf)
	req.Header.Set(c.header, c.value)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Files []struct {
			IngestID int64  `json:"ingest_id"`
			Status   string `json:"status"`
			Error    string `json:"error"`
		} `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	var ids []int64
	for _, f := range out.Files {
		if f.Status != "accepted" {
			t.Fatalf("upload: %+v", f)
		}
		ids = append(ids, f.IngestID)
	}
	return ids
}

// hostileOrg is the reporter name of the generated reports: it becomes an alert title.
const hostileOrg = `<img src=x onerror=window.__xss=11>`

// dailyReport is one day's aggregate report for alerts.example from the hostile reporter,
// every message failing DMARC and rejected.
func dailyReport(day time.Time) []byte {
	begin := day.Truncate(24 * time.Hour)
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>&lt;img src=x onerror=window.__xss=11&gt;</org_name><email>r@reporter.example</email>
    <report_id>daily-%d</report_id><date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>alerts.example</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p></policy_published>
  <record><row><source_ip>198.51.100.7</source_ip><count>40</count>
    <policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>alerts.example</header_from></identifiers>
    <auth_results><spf><domain>alerts.example</domain><result>fail</result></spf></auth_results></record>
</feedback>`, begin.Unix(), begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix()))
}

// submit clicks the form's submit button; the success notices of earlier steps (fixed at the
// bottom right, as a person would wait for or dismiss) are dismissed first so none covers it.
func submit() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		return chromedp.Do(ctx, js(`document.getElementById('notices').replaceChildren()`), chromedp.Click(chromedp.CSS(`form.form button[type=submit]`)))
	})
}

// waitFor polls a condition for 10 s; on timeout the test fails with what the page says (a
// form's error box, say).
func waitFor(p *page, cond string) {
	p.t.Helper()
	var ok bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if p.eval(cond, &ok); ok {
			return
		}
	}
	var msg string
	p.eval(`[...document.querySelectorAll('.error-box, .notice')].map(e => e.textContent).join(' | ') || document.getElementById('main').textContent.slice(0, 1500)`, &msg)
	p.t.Fatalf("waiting for %s: timeout; the page says %q; requests %v", cond, msg, p.requests(max(0, len(p.requests(0))-8)))
}

// checkNoScript: none of the hostile strings' code ran and no element was injected into main;
// want are strings that must show as text.
func checkNoScript(t *testing.T, p *page, where string, want ...string) {
	t.Helper()
	var res struct {
		Ran      any    `json:"ran"`
		Injected int    `json:"injected"`
		Text     string `json:"text"`
	}
	p.eval(`({ran: window.__xss ?? null, injected: document.querySelectorAll('main img, main svg, main script, main b, main i').length,
		text: document.getElementById('main').textContent})`, &res)
	if res.Ran != nil || res.Injected != 0 {
		t.Errorf("%s: script ran %v, %d elements injected", where, res.Ran, res.Injected)
	}
	for _, w := range want {
		if !strings.Contains(res.Text, w) {
			t.Errorf("%s: %q is not shown as text", where, w)
		}
	}
}

// The pages added for alerts, rules, channels, maintenance windows and senders, plus the
// mailbox test button and the raw download, in a real browser against the real app: each is
// opened, acted on through its controls and checked against the API's answers; hostile alert
// titles, rule, channel and sender names show as text; axe and screenshots on each.
func TestAlertPagesInBrowser(t *testing.T) {
	t.Parallel()
	// A webhook receiver and an IMAP server on loopback, which the outbound policy allows here.
	var hooks atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	mem := testenv.NewMemIMAP(t, "dmarc@example.org", "imap-pass")
	mem.Append(t, "INBOX", []byte("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"))
	base := startApp(t, map[string]string{"VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32"})
	admin := apiLogin(t, base, adminEmail, adminPassword)

	// Nine days of reports from a regular reporter that then fell silent: a missing_reports
	// rule raises an alert whose title carries the reporter's (hostile) name.
	today := time.Now().UTC()
	files := map[string][]byte{}
	for d := 12; d >= 4; d-- {
		files[fmt.Sprintf("day-%d.xml", d)] = dailyReport(today.AddDate(0, 0, -d))
	}
	admin.upload(t, files)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var s struct {
			TotalReports int `json:"total_reports"`
		}
		admin.get(t, "/api/rollup/summary", nil, &s)
		if s.TotalReports == len(files) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollups count %d reports after 60s, want %d", s.TotalReports, len(files))
		}
	}

	p := newPage(t, base)
	p.login(adminEmail, adminPassword)

	// Channels: add a webhook through the form (its secret is write-only), test it.
	const hostileChannel = `<svg onload=window.__xss=12>`
	p.open("#/alerts/channels")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form input[name=name]`), hostileChannel),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=kind]`), "webhook"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=url]`), hook.URL+"/hook"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=secret]`), "a-webhook-secret-of-some-length"),
		submit())
	waitFor(p, `document.querySelectorAll('main tbody tr').length === 1`)
	var chans struct {
		Items []struct {
			ID         int64          `json:"id"`
			Name       string         `json:"name"`
			Config     map[string]any `json:"config"`
			SecretsSet []string       `json:"secrets_set"`
		} `json:"items"`
	}
	admin.get(t, "/alerts/channels", nil, &chans)
	if len(chans.Items) != 1 || chans.Items[0].Name != hostileChannel || chans.Items[0].Config["secret"] != nil || len(chans.Items[0].SecretsSet) != 1 {
		t.Fatalf("channels after the form: %+v", chans.Items)
	}
	if s := p.text(`main table`); strings.Contains(s, "a-webhook-secret") || !strings.Contains(s, "secret: set") {
		t.Errorf("channel table shows the secret, or not that it is set: %q", s)
	}
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label^="Test channel"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#channel-test-result .badge') !== null`, chromedp.WithPollingTimeout(20*time.Second)))
	if r := p.text(`#channel-test-result`); !strings.Contains(r, "sent") || hooks.Load() != 1 {
		t.Errorf("channel test shows %q; the receiver got %d requests, want 1", r, hooks.Load())
	}
	checkNoScript(t, p, "channels", hostileChannel)
	p.shoot("channels")
	p.a11y("channels")

	// Rules: add a missing_reports rule through the form, sending to the channel.
	const hostileRule = `<b>silence</b><img src=x onerror=window.__xss=13>`
	p.open("#/alerts/rules")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form input[name=name]`), hostileRule),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=type]`), "missing_reports"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=domain]`), "alerts.example"),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=severity]`), "critical"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=p_silent_days]`), "2"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=p_lookback_days]`), "14"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=p_min_active_days]`), "7"),
		js(`document.querySelector('form.form input[name=channel]').checked = true`))
	p.run(submit())
	waitFor(p, fmt.Sprintf(`[...document.querySelectorAll('main tbody th')].some(th => th.textContent === %q)`, hostileRule))
	var rules struct {
		Items []struct {
			ID         int64   `json:"id"`
			Name       string  `json:"name"`
			Type       string  `json:"type"`
			ChannelIDs []int64 `json:"channel_ids"`
		} `json:"items"`
	}
	admin.get(t, "/alerts/rules", nil, &rules)
	var rows int
	p.eval(`document.querySelectorAll('main tbody tr').length`, &rows)
	if rows != len(rules.Items) {
		t.Errorf("rules table has %d rows, the API %d rules", rows, len(rules.Items))
	}
	found := false
	var ruleID int64
	for _, r := range rules.Items {
		if r.Name == hostileRule {
			found = r.Type == "missing_reports" && len(r.ChannelIDs) == 1 && r.ChannelIDs[0] == chans.Items[0].ID
			ruleID = r.ID
		}
	}
	if !found {
		t.Errorf("the rule made through the form is not in the API as made: %+v", rules.Items)
	}
	checkNoScript(t, p, "rules", hostileRule)
	p.shoot("rules")
	p.a11y("rules")

	// Check now (the button), then the alert appears; the list matches the API, filters too.
	p.run(chromedp.Click(chromedp.CSS(`main > button.secondary`)))
	type alertJSON struct {
		ID     int64  `json:"id"`
		Title  string `json:"title"`
		Status string `json:"status"`
		Note   string `json:"note"`
	}
	var alerts struct {
		Items []alertJSON `json:"items"`
		Total int         `json:"total"`
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		admin.get(t, "/alerts/history", url.Values{"rule_id": {fmt.Sprint(ruleID)}}, &alerts)
		if alerts.Total > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alert raised 60s after the check")
		}
	}
	if want := hostileOrg + " stopped sending reports for alerts.example"; alerts.Items[0].Title != want {
		t.Errorf("alert title %q, want %q", alerts.Items[0].Title, want)
	}
	for _, f := range []url.Values{{}, {"severity": {"critical"}}, {"status": {"open"}}, {"severity": {"info"}}, {"status": {"resolved"}},
		{"type": {"missing_reports"}}, {"domain": {"alerts.example"}, "severity": {"warning"}}} {
		var api struct {
			Items []alertJSON `json:"items"`
		}
		admin.get(t, "/alerts/history", f, &api)
		p.open("#/alerts?" + f.Encode())
		var titles []string
		p.eval(`[...document.querySelectorAll('main tbody a.alert-title')].map(a => a.textContent)`, &titles)
		var want []string
		for _, a := range api.Items {
			want = append(want, a.Title)
		}
		if strings.Join(titles, "\n") != strings.Join(want, "\n") {
			t.Errorf("alerts %v: page shows %q, API %q", f, titles, want)
		}
	}
	// The status filter through its control.
	p.open("#/alerts")
	p.run(js(`document.getElementById('main').dataset.state = ''`),
		chromedp.SetValue(chromedp.CSS(`select[name=status]`), "acknowledged"),
		chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
	var h string
	p.eval(`location.hash`, &h)
	if !strings.Contains(h, "status=acknowledged") || !strings.Contains(p.text(`main .empty`), "No alert matches") {
		t.Errorf("status filter: hash %s, page %q", h, p.text(`main`))
	}
	p.open("#/alerts")
	checkNoScript(t, p, "alerts", hostileOrg)
	p.shoot("alerts")
	p.a11y("alerts")

	// The detail: deliveries, then acknowledge and resolve with notes.
	id := alerts.Items[0].ID
	p.open(fmt.Sprintf("#/alert/%d", id))
	if h1 := p.text(`main h1`); h1 != alerts.Items[0].Title {
		t.Errorf("detail heading %q, want the title %q", h1, alerts.Items[0].Title)
	}
	if s := p.text(`main`); !strings.Contains(s, hostileChannel) {
		t.Errorf("detail does not name the delivery's channel: %.300s", s)
	}
	checkNoScript(t, p, "alert detail", hostileOrg, hostileChannel)
	p.shoot("alert-detail")
	p.a11y("alert detail")
	act := func(button, note, status string) {
		t.Helper()
		p.run(chromedp.SetValue(chromedp.CSS(`textarea[name=note]`), note),
			js(`document.getElementById('main').dataset.state = ''`),
			chromedp.Click(chromedp.CSS(button)),
			chromedp.WaitVisible(chromedp.CSS(`main[data-state="ready"]`)))
		var a alertJSON
		admin.get(t, fmt.Sprintf("/alerts/%d", id), nil, &a)
		if a.Status != status || a.Note != note {
			t.Errorf("after %s: API says %s with note %q, want %s with %q", button, a.Status, a.Note, status, note)
		}
		if s := p.text(`main`); !strings.Contains(s, note) || !strings.Contains(s, status) {
			t.Errorf("after %s the page does not show %q and %s", button, note, status)
		}
	}
	act(`#alert-ack`, "looking into it <i>now</i>", "acknowledged")
	act(`#alert-resolve`, "reporter fixed", "resolved")
	checkNoScript(t, p, "alert detail after resolve", "<i>now</i>")

	// Maintenance windows: a weekly one through the form.
	p.open("#/alerts/windows")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form input[name=domain]`), "alerts.example"),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=recurrence]`), "weekly"),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=weekday]`), "sunday"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=start_time]`), "02:00"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=duration]`), "2h"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=note]`), "<script>window.__xss=14</script> backups"),
		submit())
	waitFor(p, `document.querySelectorAll('main tbody tr').length === 1`)
	var wins struct {
		Items []struct {
			Recurrence string  `json:"recurrence"`
			Weekday    *string `json:"weekday"`
			Duration   *string `json:"duration"`
		} `json:"items"`
	}
	admin.get(t, "/alerts/suppressions", nil, &wins)
	if len(wins.Items) != 1 || wins.Items[0].Recurrence != "weekly" || wins.Items[0].Weekday == nil || *wins.Items[0].Weekday != "sunday" {
		t.Errorf("windows after the form: %+v", wins.Items)
	}
	checkNoScript(t, p, "windows", "<script>window.__xss=14</script> backups")
	p.shoot("windows")
	p.a11y("windows")

	// Senders: the list against the API, the country table, a mapping added through the form.
	const hostileSender = `<img src=x onerror=window.__xss=15> Mailer`
	p.open("#/senders")
	var sendersAPI struct {
		Total int `json:"total"`
		Items []struct {
			Domain   string `json:"domain"`
			Messages int64  `json:"messages"`
		} `json:"items"`
	}
	admin.get(t, "/api/senders", url.Values{"page_size": {"50"}}, &sendersAPI)
	var senderRows [][]string
	p.eval(`[...document.querySelectorAll('main table[data-x] tbody tr, main .table-wrap[aria-label="Senders"] tbody tr')].map(tr => [tr.children[2].textContent, tr.children[3].textContent])`, &senderRows)
	if len(senderRows) != len(sendersAPI.Items) || sendersAPI.Total == 0 {
		t.Errorf("senders table has %d rows, the API %d (total %d)", len(senderRows), len(sendersAPI.Items), sendersAPI.Total)
	}
	for i := range min(len(senderRows), len(sendersAPI.Items)) {
		if senderRows[i][0] != sendersAPI.Items[i].Domain || strings.ReplaceAll(senderRows[i][1], ",", "") != fmt.Sprint(sendersAPI.Items[i].Messages) {
			t.Errorf("sender row %d: %v, API %+v", i, senderRows[i], sendersAPI.Items[i])
		}
	}
	p.run(chromedp.SetValue(chromedp.CSS(`form.form select[name=kind]`), "asn"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=pattern]`), "64500"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=name]`), hostileSender),
		chromedp.SetValue(chromedp.CSS(`form.form select[name=type]`), "esp"),
		submit())
	waitFor(p, `document.querySelector('main .mapping-name') !== null`)
	var maps struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	admin.get(t, "/api/senders/mappings", nil, &maps)
	if len(maps.Items) != 1 || maps.Items[0].Name != hostileSender {
		t.Errorf("mappings after the form: %+v", maps.Items)
	}
	checkNoScript(t, p, "senders", hostileSender, "alerts.example")
	p.shoot("senders")
	p.a11y("senders")

	// Mailboxes: the test button, for a good mailbox and one with a wrong password.
	for _, m := range []struct{ name, pass string }{{"good box", "imap-pass"}, {"bad box", "wrong-pass"}} {
		if code := admin.send(t, http.MethodPost, "/api/mailboxes", map[string]any{"name": m.name, "host": mem.Host, "port": mem.Port,
			"username": "dmarc@example.org", "password": m.pass, "tls": "none", "allow_plain": true, "enabled": false}, &struct{}{}); code != http.StatusCreated {
			t.Fatalf("create mailbox %s: %d", m.name, code)
		}
	}
	p.open("#/admin/mailboxes")
	testBox := func(name string) (ok, stage, text string) {
		p.run(js(`document.getElementById('mailbox-test-result').replaceChildren()`),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Test mailbox %s"]`, name))),
			chromedp.Poll[chromedp.Void](`document.querySelector('#mailbox-test-result .test-result, #mailbox-test-result .error-box') !== null`, chromedp.WithPollingTimeout(30*time.Second)))
		var r [3]string
		p.eval(`(() => { const e = document.querySelector('#mailbox-test-result .test-result'); return e ? [e.dataset.ok, e.dataset.stage, e.textContent] : ['', '', document.getElementById('mailbox-test-result').textContent]; })()`, &r)
		return r[0], r[1], r[2]
	}
	if ok, _, text := testBox("good box"); ok != "true" || !strings.Contains(text, "holds 1 messages") {
		t.Errorf("good mailbox test: ok=%s %q", ok, text)
	}
	if ok, stage, text := testBox("bad box"); ok != "false" || stage != "login" || !strings.Contains(text, "logging in") {
		t.Errorf("bad mailbox test: ok=%s stage=%s %q", ok, stage, text)
	}
	p.shoot("mailbox-test")
	p.a11y("mailbox test")

	// Raw download on a report's detail (admins): the button is there, and the bytes that
	// come down are the file uploaded.
	var rep struct {
		Items []struct {
			ID       int64 `json:"id"`
			IngestID int64 `json:"ingest_id"`
		} `json:"items"`
	}
	admin.get(t, "/api/reports", url.Values{"domain": {"alerts.example"}, "page_size": {"1"}}, &rep)
	p.open(fmt.Sprintf("#/report/%d", rep.Items[0].ID))
	var got struct {
		Name string `json:"name"`
		Body string `json:"body"`
		Type string `json:"type"`
	}
	p.eval(fmt.Sprintf(`(async () => {
		if (!document.getElementById('raw-download')) return {name: 'no button'};
		const api = await import('/assets/api.js');
		const r = await fetch('/api/ingests/%d/raw', {headers: {Authorization: 'Bearer ' + api.session.access}});
		return {name: await api.download('/api/ingests/%d/raw', 'x'), body: await r.text(), type: r.headers.get('Content-Type')};
	})()`, rep.Items[0].IngestID, rep.Items[0].IngestID), &got)
	wantBody, known := files[got.Name] // the download is named as the file was uploaded
	if !known || got.Type != "application/xml" || got.Body != string(wantBody) {
		t.Errorf("raw download: name %q type %q, %d bytes (want the %d uploaded)", got.Name, got.Type, len(got.Body), len(wantBody))
	}

	// A viewer: alerts and senders readable, no channels, no rule form, no acting on alerts,
	// no mappings; an analyst-only action refused by the API too.
	if code := admin.send(t, http.MethodPost, "/users", map[string]string{"email": viewerEmail, "password": viewerPass, "role": "viewer", "name": "Vera Viewer"}, &struct{}{}); code != http.StatusCreated {
		t.Fatalf("create viewer: %d", code)
	}
	p.run(chromedp.Click(chromedp.CSS(`#who button.secondary`)))
	p.login(viewerEmail, viewerPass)
	p.open("#/alerts/rules")
	var n struct {
		Forms, Channels, Rows int
	}
	p.eval(`({forms: document.querySelectorAll('main form.form').length, channels: document.querySelectorAll('.subnav a[href="#/alerts/channels"]').length, rows: document.querySelectorAll('main tbody tr').length})`, &n)
	if n.Forms != 0 || n.Channels != 0 || n.Rows != len(rules.Items) {
		t.Errorf("viewer on rules: %+v, want no form, no channels tab, %d rows", n, len(rules.Items))
	}
	p.open(fmt.Sprintf("#/alert/%d", id))
	p.eval(`document.querySelectorAll('#alert-ack, #alert-resolve, textarea[name=note]').length`, &n.Forms)
	if n.Forms != 0 {
		t.Errorf("a viewer is offered %d alert actions", n.Forms)
	}
	p.run(js(`location.hash = '#/alerts/channels'`), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	if h1 := p.text(`main h1`); h1 != "Not allowed" {
		t.Errorf("a viewer on channels sees %q", h1)
	}
	p.open("#/senders")
	p.eval(`document.querySelectorAll('main form.form').length`, &n.Forms)
	if n.Forms != 0 {
		t.Error("a viewer is offered the mapping form")
	}
	p.a11y("senders (viewer)")
	viewer := apiLogin(t, base, viewerEmail, viewerPass)
	if code := viewer.send(t, http.MethodPatch, fmt.Sprintf("/alerts/%d/acknowledge", id), map[string]string{"note": "x"}, nil); code != http.StatusForbidden {
		t.Errorf("viewer acknowledging: %d, want 403", code)
	}
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
