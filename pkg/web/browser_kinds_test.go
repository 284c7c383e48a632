package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// mlReport is one day's aggregate report for ml.example with twelve sources, their volumes
// and failures varying by source and day, so that a model can be trained (ten sources at
// least), a forecast fitted (two weeks at least) and advice given.
func mlReport(day time.Time, n int) []byte {
	begin := day.Truncate(24 * time.Hour)
	var recs strings.Builder
	for i := 1; i <= 12; i++ {
		count := 20 + i*7 + (n*i)%13
		result := "pass"
		if i > 9 { // three sources fail: unauthenticated mail
			result = "fail"
		}
		fmt.Fprintf(&recs, `<record><row><source_ip>203.0.113.%d</source_ip><count>%d</count>
    <policy_evaluated><disposition>none</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>ml.example</header_from></identifiers>
    <auth_results><dkim><domain>ml.example</domain><result>%s</result></dkim><spf><domain>ml.example</domain><result>%s</result></spf></auth_results></record>
`, i, count, result, result, result, result)
	}
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>reporter.example</org_name><email>r@reporter.example</email>
    <report_id>ml-%d</report_id><date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>ml.example</domain><adkim>r</adkim><aspf>r</aspf><p>none</p></policy_published>
  %s</feedback>`, n, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), recs.String()))
}

// pollPage waits up to d for a condition in the page (a worker's task, say).
func pollPage(p *page, cond string, d time.Duration) {
	p.t.Helper()
	p.run(chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(d)))
}

// ids answers the numeric ids at the end of the hrefs of the links matched by sel.
func (p *page) hrefs(sel string) []string {
	p.t.Helper()
	var out []string
	p.eval(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(a => a.getAttribute('href'))`, sel), &out)
	return out
}

// The pages for SMTP TLS and failure reports, exports and digests, the ML insights and the
// per-type rule form, in a real browser against the real app: each is opened, acted on through
// its controls and checked against the API's answers; hostile TLS and failure reports show as
// text; axe and screenshots on each; a viewer is offered none of the admin actions.
func TestReportKindsAndInsightsInBrowser(t *testing.T) {
	t.Parallel()
	corpusDir, _ := corpus.ForTest(t)
	// A low row limit, so a reports export is "large" and goes through a worker task.
	base := startApp(t, map[string]string{"VIGIL_EXPORT_ROW_LIMIT": "5"})
	admin := apiLogin(t, base, adminEmail, adminPassword)

	files := map[string][]byte{}
	read := func(name, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	read("rfc8460.json", filepath.Join(corpusDir, "parsedmarc/samples/smtp_tls/rfc8460.json"))
	read("google-tls.json", filepath.Join(corpusDir, "DmarcAnalyzerApp/src/api.tests/Fixtures/sample-google-tls.json"))
	read("xss-tls.json", "testdata/xss-tls.json")
	read("linkedin.eml", filepath.Join(corpusDir, "parsedmarc/samples/failure/dmarc_ruf_report_linkedin.eml"))
	read("xss-failure.eml", "testdata/xss-failure.eml")
	read("xss-report.xml", "testdata/xss-report.xml")
	const mlDays = 20
	today := time.Now().UTC()
	for d := mlDays; d >= 1; d-- {
		files[fmt.Sprintf("ml-%d.xml", d)] = mlReport(today.AddDate(0, 0, -d), d)
	}
	admin.upload(t, files)
	type envelope struct {
		Total int64 `json:"total"`
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var tl, fl envelope
		var s struct {
			TotalReports int `json:"total_reports"`
		}
		admin.get(t, "/api/tls-reports", nil, &tl)
		admin.get(t, "/api/failure-reports", nil, &fl)
		admin.get(t, "/api/rollup/summary", nil, &s)
		if tl.Total == 3 && fl.Total == 2 && s.TotalReports == mlDays+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: %d TLS reports (want 3), %d failure reports (want 2), %d aggregate (want %d)", tl.Total, fl.Total, s.TotalReports, mlDays+1)
		}
	}

	p := newPage(t, base)
	p.login(adminEmail, adminPassword)

	// SMTP TLS reports: the list and the rollup as the API says, under filters.
	type tlsItem struct {
		ID               int64  `json:"id"`
		OrganizationName string `json:"organization_name"`
		PolicyDomain     string `json:"policy_domain"`
	}
	var tlsRoll struct {
		Successful int64 `json:"successful_sessions"`
		Failed     int64 `json:"failed_sessions"`
	}
	for _, f := range []url.Values{{}, {"domain": {"xss.example"}}, {"org_name": {"Company-X"}}} {
		var api struct {
			Items []tlsItem `json:"items"`
		}
		admin.get(t, "/api/tls-reports", f, &api)
		admin.get(t, "/api/rollup/tls", f, &tlsRoll)
		p.open("#/tls?" + f.Encode())
		var want []string
		for _, r := range api.Items {
			want = append(want, fmt.Sprintf("#/tls-report/%d", r.ID))
		}
		if got := p.hrefs(`main a[href^="#/tls-report/"]`); !slices.Equal(got, want) {
			t.Errorf("TLS reports %v: page %v, API %v", f, got, want)
		}
		var sums [2]int64
		p.eval(`(() => { const c = Chart.getChart('chart-tls-days'); return c.data.datasets.map(d => d.data.reduce((a, b) => a + b, 0)); })()`, &sums)
		if sums[0] != tlsRoll.Successful || sums[1] != tlsRoll.Failed {
			t.Errorf("TLS chart %v sums %v, API %d successful and %d failed", f, sums, tlsRoll.Successful, tlsRoll.Failed)
		}
	}
	p.open("#/tls")
	checkNoScript(t, p, "TLS reports", "<img src=x onerror=window.__xss=21> TLS reporter", "<i>mx</i>.xss.example")
	p.shoot("tls")
	p.a11y("TLS reports")
	var hostileTLS struct {
		Items []tlsItem `json:"items"`
	}
	admin.get(t, "/api/tls-reports", url.Values{"domain": {"xss.example"}}, &hostileTLS)
	if len(hostileTLS.Items) != 1 {
		t.Fatalf("API lists %d TLS reports for xss.example", len(hostileTLS.Items))
	}
	p.open(fmt.Sprintf("#/tls-report/%d", hostileTLS.Items[0].ID))
	if h1 := p.text(`main h1`); h1 != "TLS report from <img src=x onerror=window.__xss=21> TLS reporter" {
		t.Errorf("TLS detail heading %q", h1)
	}
	checkNoScript(t, p, "TLS report detail", "javascript:window.__xss=24", "<script>window.__xss=22</script>@reporter.example",
		"mx: <svg onload=window.__xss=23>.xss.example", "certificate-host-mismatch", "192.0.2.25")
	var links int
	p.eval(`[...document.querySelectorAll('main a')].filter(a => !a.getAttribute('href').startsWith('#/')).length`, &links)
	if links != 0 {
		t.Errorf("the TLS detail made %d links out of report strings", links)
	}
	p.shoot("tls-report")
	p.a11y("TLS report detail")

	// Failure reports: list and filters against the API; the detail's header table.
	type failItem struct {
		ID       int64  `json:"id"`
		Redacted bool   `json:"redacted"`
		Subject  string `json:"subject"`
	}
	for _, f := range []url.Values{{}, {"domain": {"xss.example"}}, {"dkim_result": {"fail"}}, {"source_ip": {"10.10.10.10"}}} {
		var api struct {
			Items []failItem `json:"items"`
		}
		admin.get(t, "/api/failure-reports", f, &api)
		p.open("#/failures?" + f.Encode())
		var want []string
		for _, r := range api.Items {
			want = append(want, fmt.Sprintf("#/failure/%d", r.ID))
		}
		if got := p.hrefs(`main a[href^="#/failure/"]`); !slices.Equal(got, want) {
			t.Errorf("failure reports %v: page %v, API %v", f, got, want)
		}
	}
	p.open("#/failures")
	checkNoScript(t, p, "failure reports", "DMARC failure report for xss.example <img src=x onerror=window.__xss=25>")
	p.shoot("failures")
	p.a11y("failure reports")
	var hostileFail struct {
		Items []failItem `json:"items"`
	}
	admin.get(t, "/api/failure-reports", url.Values{"domain": {"xss.example"}}, &hostileFail)
	if len(hostileFail.Items) != 1 {
		t.Fatalf("API lists %d failure reports for xss.example", len(hostileFail.Items))
	}
	var failDetail struct {
		Headers []struct{ Name, Value string } `json:"sample_headers"`
	}
	admin.get(t, fmt.Sprintf("/api/failure-reports/%d", hostileFail.Items[0].ID), nil, &failDetail)
	p.open(fmt.Sprintf("#/failure/%d", hostileFail.Items[0].ID))
	var headerRows int
	p.eval(`document.querySelectorAll('main .table-wrap[aria-label="Sample header"] tbody tr').length`, &headerRows)
	if headerRows != len(failDetail.Headers) || headerRows == 0 {
		t.Errorf("failure detail shows %d header fields, the API %d", headerRows, len(failDetail.Headers))
	}
	if b := p.text(`#redaction`); hostileFail.Items[0].Redacted != strings.HasPrefix(b, "Redacted") {
		t.Errorf("redaction banner %q for a report with redacted=%v", b, hostileFail.Items[0].Redacted)
	}
	checkNoScript(t, p, "failure detail", "<script>window.__xss=27</script> invoice", "<b>Reporter</b>/1.0")
	p.shoot("failure-detail")
	p.a11y("failure detail")

	// Exports: a small one is answered at once; a large one (over the row limit of 5) is
	// followed through its task to the file, which holds every report.
	p.open("#/reports?domain=xss.example")
	mark := p.mark()
	p.run(js(`document.getElementById('notices').replaceChildren()`), chromedp.Click(chromedp.CSS(`button[data-export="reports-csv"]`)))
	pollPage(p, `[...document.querySelectorAll('#notices .notice')].some(n => /\.csv saved\./.test(n.textContent))`, 30*time.Second)
	if !slices.Contains(p.urls(mark), "GET /api/export/reports/csv?domain=xss.example") {
		t.Errorf("the small export did not carry the filter: %v", p.urls(mark))
	}
	var all envelope
	admin.get(t, "/api/reports", nil, &all)
	p.open("#/reports")
	p.run(js(`document.getElementById('notices').replaceChildren()`), chromedp.Click(chromedp.CSS(`button[data-export="reports-csv"]`)))
	pollPage(p, `[...document.querySelectorAll('#notices .notice')].some(n => n.textContent.includes('is being prepared'))`, 30*time.Second)
	p.open("#/exports")
	pollPage(p, `document.querySelector('#exports-list [data-state="completed"]') !== null`, 120*time.Second)
	var csv struct {
		Lines int    `json:"lines"`
		Type  string `json:"type"`
	}
	p.eval(`(async () => {
		const x = JSON.parse(sessionStorage.getItem('vigil.exports')).find(e => e.state === 'completed');
		const api = await import('/assets/api.js');
		const r = await fetch(x.result.download_url, {headers: {Authorization: 'Bearer ' + api.session.access}});
		const text = await r.text();
		return {lines: text.trim().split('\r\n').length, type: r.headers.get('Content-Type')};
	})()`, &csv)
	if int64(csv.Lines) != all.Total+1 || !strings.HasPrefix(csv.Type, "text/csv") {
		t.Errorf("large export: %d lines of %s, want a header and %d reports", csv.Lines, csv.Type, all.Total)
	}
	p.shoot("exports")
	p.a11y("exports")

	// Digests: subscribe through the form, see it listed as the API has it, unsubscribe.
	p.open("#/exports/digests")
	p.run(chromedp.SetValue(chromedp.CSS(`form.form select[name=frequency]`), "monthly"),
		chromedp.SetValue(chromedp.CSS(`form.form input[name=domains]`), "ml.example, xss.example"),
		js(`document.querySelector('form.form input[name=format][value=xlsx]').checked = true`), submit())
	waitFor(p, `document.querySelectorAll('main tbody tr').length === 1`)
	var digests struct {
		Items []struct {
			ID        int64    `json:"id"`
			Frequency string   `json:"frequency"`
			Domains   []string `json:"domains"`
			Formats   []string `json:"formats"`
			Email     string   `json:"email"`
		} `json:"items"`
	}
	admin.get(t, "/api/digests", nil, &digests)
	if len(digests.Items) != 1 || digests.Items[0].Frequency != "monthly" || strings.Join(digests.Items[0].Domains, ",") != "ml.example,xss.example" ||
		strings.Join(digests.Items[0].Formats, ",") != "pdf,xlsx" || digests.Items[0].Email != adminEmail {
		t.Errorf("digests after the form: %+v", digests.Items)
	}
	p.shoot("digests")
	p.a11y("digests")
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label^="Unsubscribe"]`)), chromedp.WaitVisible(chromedp.CSS(`dialog.modal`)),
		chromedp.Click(chromedp.CSS(`dialog.modal button[value=yes]`)))
	waitFor(p, `document.querySelector('main .empty') !== null`)
	admin.get(t, "/api/digests", nil, &digests)
	if len(digests.Items) != 0 {
		t.Errorf("after unsubscribing the API still lists %+v", digests.Items)
	}

	// Models: train through the form; the first model deploys itself; its stats are shown.
	p.open("#/insights/models")
	p.run(chromedp.SetValue(chromedp.CSS(`#ml-train-days`), "30"), chromedp.Click(chromedp.CSS(`form[aria-label="Train a model"] button[type=submit]`)))
	type model struct {
		ID       int64  `json:"id"`
		Version  int    `json:"version"`
		Status   string `json:"status"`
		Deployed bool   `json:"deployed"`
		Samples  int    `json:"samples"`
	}
	var models struct {
		Items []model `json:"items"`
	}
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		admin.get(t, "/analytics/ml/models", nil, &models)
		if len(models.Items) > 0 && models.Items[0].Status != "training" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trained model 120s after the form: %+v", models.Items)
		}
	}
	if m := models.Items[0]; m.Status != "ready" || !m.Deployed || m.Samples != 12 {
		t.Fatalf("model after training: %+v, want ready, deployed, 12 samples", m)
	}
	p.open(fmt.Sprintf("#/insights/models?model=%d", models.Items[0].ID))
	var modelRows, deployButtons int
	p.eval(`document.querySelectorAll('main .table-wrap[aria-label="Models"] tbody tr').length`, &modelRows)
	p.eval(`document.querySelectorAll('main button[aria-label^="Deploy"]').length`, &deployButtons)
	if modelRows != len(models.Items) || deployButtons != 0 {
		t.Errorf("models page: %d rows (API %d), %d deploy buttons for a deployed model", modelRows, len(models.Items), deployButtons)
	}
	if s := p.text(`#model-stats`); !strings.Contains(s, "Samples") || !strings.Contains(s, "12") {
		t.Errorf("model stats: %q", s)
	}
	p.shoot("models")
	p.a11y("models")

	// Anomalies: score now (the button), then every scored source as the API ranks them.
	p.open("#/insights")
	p.run(chromedp.Click(chromedp.CSS(`#ml-detect`)))
	type prediction struct {
		IP string `json:"ip"`
	}
	var preds struct {
		Items []prediction `json:"items"`
		Total int          `json:"total"`
	}
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		admin.get(t, "/analytics/anomalies/recent", url.Values{"all": {"true"}, "page_size": {"50"}}, &preds)
		if preds.Total > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scoring run 120s after the button")
		}
	}
	p.open("#/insights?all=true")
	var ips []string
	p.eval(`[...document.querySelectorAll('main tbody th')].map(th => th.textContent)`, &ips)
	var wantIPs []string
	for _, x := range preds.Items {
		wantIPs = append(wantIPs, x.IP)
	}
	if !slices.Equal(ips, wantIPs) || len(ips) != 12 {
		t.Errorf("scored sources: page %v, API %v", ips, wantIPs)
	}
	p.shoot("anomalies")
	p.a11y("anomalies")

	// Forecast and advice for a domain: the observed series is the API's history, the stage its.
	var fc struct {
		FailureRate struct {
			History []struct {
				Value *float64 `json:"value"`
			} `json:"history"`
			Points []struct {
				Value float64 `json:"value"`
			} `json:"points"`
		} `json:"failure_rate"`
	}
	admin.get(t, "/analytics/forecast", url.Values{"domain": {"ml.example"}}, &fc)
	var adv struct {
		Stage  string `json:"stage"`
		Record string `json:"record"`
	}
	admin.get(t, "/analytics/policy-advice", url.Values{"domain": {"ml.example"}}, &adv)
	p.open("#/insights/domain?domain=ml.example")
	var series [][]*float64
	p.eval(`Chart.getChart('chart-forecast').data.datasets.slice(0, 2).map(d => d.data)`, &series)
	var wantObs, wantFc []*float64
	for _, x := range fc.FailureRate.History {
		if x.Value == nil {
			wantObs = append(wantObs, nil)
		} else {
			wantObs = append(wantObs, fl(*x.Value*100))
		}
	}
	for range fc.FailureRate.Points {
		wantObs = append(wantObs, nil)
	}
	for range fc.FailureRate.History {
		wantFc = append(wantFc, nil)
	}
	for _, x := range fc.FailureRate.Points {
		wantFc = append(wantFc, fl(x.Value*100))
	}
	if len(series) != 2 || !sameData(series, [][]*float64{wantObs, wantFc}) {
		t.Errorf("forecast chart: %v, API %v", show(series), show([][]*float64{wantObs, wantFc}))
	}
	if s := p.text(`#advice-stage`); s != adv.Stage {
		t.Errorf("advice stage %q, API %q", s, adv.Stage)
	}
	if adv.Record != "" {
		if r := p.text(`#advice-record`); r != adv.Record {
			t.Errorf("advice record %q, API %q", r, adv.Record)
		}
	}
	p.shoot("forecast")
	p.a11y("forecast and advice")

	// The per-type rule form: the browser refuses a value out of range before any request;
	// the API's own refusal (a rule between fields) is shown; a good rule is stored as typed.
	p.open("#/alerts/rules")
	var before envelope
	var rules struct {
		Items []struct {
			Name   string         `json:"name"`
			Type   string         `json:"type"`
			Params map[string]any `json:"params"`
		} `json:"items"`
	}
	admin.get(t, "/alerts/rules", nil, &rules)
	before.Total = int64(len(rules.Items))
	create := `form.form[aria-label="New rule"] `
	p.run(chromedp.SetValue(chromedp.CSS(create+`input[name=name]`), "TLS <b>watch</b>"),
		chromedp.SetValue(chromedp.CSS(create+`select[name=type]`), "tls_failure"),
		js(`document.querySelector('form.form[aria-label="New rule"] select[name=type]').dispatchEvent(new Event('change'))`),
		chromedp.SetValue(chromedp.CSS(create+`input[name=p_threshold]`), "5"))
	mark = p.mark()
	p.run(js(`document.getElementById('notices').replaceChildren()`), chromedp.Click(chromedp.CSS(create+`button[type=submit]`)), chromedp.Sleep(500*time.Millisecond))
	var invalid bool
	p.eval(`document.querySelector('form.form[aria-label="New rule"] input[name=p_threshold]').validity.rangeOverflow`, &invalid)
	if !invalid || slices.Contains(p.requests(mark), "POST /alerts/rules") {
		t.Errorf("threshold 5: range overflow %v; requests %v (want none)", invalid, p.requests(mark))
	}
	p.run(chromedp.SetValue(chromedp.CSS(create+`select[name=type]`), "missing_reports"),
		js(`document.querySelector('form.form[aria-label="New rule"] select[name=type]').dispatchEvent(new Event('change'))`),
		chromedp.SetValue(chromedp.CSS(create+`input[name=p_lookback_days]`), "5"),
		chromedp.SetValue(chromedp.CSS(create+`input[name=p_min_active_days]`), "7"),
		chromedp.Click(chromedp.CSS(create+`button[type=submit]`)))
	waitFor(p, `(document.querySelector('form.form[aria-label="New rule"] .error-box') || {}).textContent?.includes('min_active_days')`)
	p.run(chromedp.SetValue(chromedp.CSS(create+`select[name=type]`), "tls_failure"),
		js(`document.querySelector('form.form[aria-label="New rule"] select[name=type]').dispatchEvent(new Event('change'))`),
		chromedp.SetValue(chromedp.CSS(create+`input[name=p_threshold]`), "0.08"),
		chromedp.SetValue(chromedp.CSS(create+`input[name=p_window_days]`), "3"),
		chromedp.Click(chromedp.CSS(create+`button[type=submit]`)))
	waitFor(p, `[...document.querySelectorAll('main tbody th')].some(th => th.textContent === 'TLS <b>watch</b>')`)
	admin.get(t, "/alerts/rules", nil, &rules)
	var got map[string]any
	for _, r := range rules.Items {
		if r.Name == "TLS <b>watch</b>" && r.Type == "tls_failure" {
			got = r.Params
		}
	}
	if int64(len(rules.Items)) != before.Total+1 || got["threshold"] != 0.08 || got["window_days"] != 3.0 || got["min_sessions"] != 10.0 {
		t.Errorf("rule from the form: params %v (%d rules, %d before)", got, len(rules.Items), before.Total)
	}
	// Editing shows the stored parameters in the type's fields.
	p.run(chromedp.Click(chromedp.CSS(`button[aria-label="Edit rule TLS <b>watch</b>"]`)))
	var editing [2]string
	p.eval(`(() => { const f = document.querySelector('form.form[aria-label^="Edit"]'); return [f.elements.p_threshold.value, f.elements.p_window_days.value]; })()`, &editing)
	if editing != [2]string{"0.08", "3"} {
		t.Errorf("edit form shows %v, want the stored 0.08 and 3", editing)
	}
	checkNoScript(t, p, "rules", "TLS <b>watch</b>")
	p.shoot("rule-form")
	p.a11y("rule form")
	// The TLS page marks the domains above the enabled tls_failure rule's threshold (8 %).
	p.open("#/tls")
	var marks map[string]string
	p.eval(`Object.fromEntries([...document.querySelectorAll('main .table-wrap[aria-label="Domains"] tbody tr')].map(tr => [tr.children[0].textContent, tr.children[4].textContent]))`, &marks)
	if marks["xss.example"] != "above" || marks["company-y.example"] != "within" {
		t.Errorf("TLS domains against the rule: %v, want xss.example (10 %%) above and company-y.example (5.4 %%) within", marks)
	}

	// Dark theme on the chart-heavy new pages.
	p.run(chromedp.Click(chromedp.CSS(`#who button[aria-label^="Switch"]`)), chromedp.Sleep(200*time.Millisecond))
	var legendFollows bool
	p.eval(`Chart.getChart('chart-tls-days').options.plugins.legend.labels.color === getComputedStyle(document.documentElement).getPropertyValue('--fg').trim()`, &legendFollows)
	if !legendFollows {
		t.Error("the TLS chart's legend kept the light theme's colour after the switch")
	}
	p.a11y("TLS reports (dark)")
	p.shoot("tls-dark")
	p.open("#/insights/domain?domain=ml.example")
	p.a11y("forecast and advice (dark)")
	p.run(chromedp.Click(chromedp.CSS(`#who button[aria-label^="Switch"]`)))

	// A viewer: the new pages are readable; no training, deploying, scoring or digest address.
	if code := admin.send(t, http.MethodPost, "/users", map[string]string{"email": viewerEmail, "password": viewerPass, "role": "viewer", "name": "Vera Viewer"}, &struct{}{}); code != http.StatusCreated {
		t.Fatalf("create viewer: %d", code)
	}
	p.run(chromedp.Click(chromedp.CSS(`#who button.secondary`)))
	p.login(viewerEmail, viewerPass)
	nav := p.text(`#nav`)
	for _, want := range []string{"TLS & failures", "Insights", "Exports"} {
		if !strings.Contains(nav, want) {
			t.Errorf("a viewer's menu lacks %s: %q", want, nav)
		}
	}
	var offered struct {
		Train, Deploy, Detect, Email int
	}
	p.open("#/insights/models")
	p.eval(`document.querySelectorAll('form[aria-label="Train a model"]').length`, &offered.Train)
	p.eval(`document.querySelectorAll('main button[aria-label^="Deploy"]').length`, &offered.Deploy)
	p.open("#/insights")
	p.eval(`document.querySelectorAll('#ml-detect').length`, &offered.Detect)
	p.open("#/exports") // the admin's exports went with the admin's session
	if s := p.text(`#exports-list`); !strings.Contains(s, "No large exports") {
		t.Errorf("the next user of the tab sees the previous one's exports: %q", s)
	}
	p.open("#/exports/digests")
	p.eval(`document.querySelectorAll('main input[name=email]').length`, &offered.Email)
	if offered != (struct{ Train, Deploy, Detect, Email int }{}) {
		t.Errorf("a viewer is offered %+v", offered)
	}
	p.a11y("digests (viewer)")
	viewer := apiLogin(t, base, viewerEmail, viewerPass)
	if code := viewer.send(t, http.MethodPost, "/analytics/ml/train", map[string]int{"days": 30}, nil); code != http.StatusForbidden {
		t.Errorf("viewer training a model: %d, want 403", code)
	}
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
