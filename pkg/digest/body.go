package digest

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/export"
)

// htmlBody escapes everything it is given (html/template): a reporter's org name or a PTR
// with markup shows as text.
var htmlBody = template.Must(template.New("digest").Funcs(template.FuncMap{"pct": pct, "num": num}).Parse(`<!doctype html>
<html><body style="font-family:sans-serif;color:#212529">
<h2>Vigil {{.Frequency}} DMARC digest</h2>
<p>{{.From}} to {{.To}} (UTC). Details are in the attachments.</p>
{{range .Sums}}
<h3>{{.Scope}}</h3>
<table cellpadding="4" style="border-collapse:collapse">
<tr><th align="left">Messages</th><td>{{num .KPIs.TotalMessages}}</td></tr>
<tr><th align="left">DMARC pass rate</th><td>{{pct .KPIs.DMARCPassRate}}</td></tr>
<tr><th align="left">Failing messages</th><td>{{num .KPIs.DMARCFailMessages}}</td></tr>
<tr><th align="left">Reports</th><td>{{num .KPIs.TotalReports}}</td></tr>
<tr><th align="left">Sources</th><td>{{num .KPIs.Sources}}</td></tr>
</table>
{{if .Sources}}<h4>Top sources</h4>
<table cellpadding="3" style="border-collapse:collapse"><tr><th align="left">source</th><th align="left">sender</th><th align="right">messages</th><th align="right">pass rate</th></tr>
{{range .Sources}}<tr><td>{{.SourceIP}}</td><td>{{if .Sender}}{{.Sender}}{{end}}</td><td align="right">{{num .Messages}}</td><td align="right">{{pct .DMARCPassRate}}</td></tr>
{{end}}</table>{{end}}
<h4>Advice</h4><ul>{{range .Advice}}<li>{{.}}</li>{{end}}</ul>
{{end}}
</body></html>`))

func pct(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", *p*100)
}

func num(n int64) string { return fmt.Sprintf("%d", n) }

// bodies are the plain-text and HTML parts of a digest.
func bodies(sums []*export.Summary, freq string, start, end time.Time) (string, string, error) {
	from, to := start.Format("2006-01-02"), end.AddDate(0, 0, -1).Format("2006-01-02")
	var txt strings.Builder
	fmt.Fprintf(&txt, "Vigil %s DMARC digest, %s to %s (UTC)\n", freq, from, to)
	for _, s := range sums {
		k := s.KPIs
		fmt.Fprintf(&txt, "\n%s\n%s\n", s.Scope, strings.Repeat("=", len(s.Scope)))
		fmt.Fprintf(&txt, "Messages: %d\nDMARC pass rate: %s\nFailing messages: %d\nReports: %d\nSources: %d\n",
			k.TotalMessages, pct(k.DMARCPassRate), k.DMARCFailMessages, k.TotalReports, k.Sources)
		if len(s.Sources) > 0 {
			txt.WriteString("\nTop sources:\n")
			for i, src := range s.Sources[:min(10, len(s.Sources))] {
				fmt.Fprintf(&txt, "  %d. %s  %d messages, %s pass\n", i+1, src.SourceIP, src.Messages, pct(src.DMARCPassRate))
			}
		}
		txt.WriteString("\nAdvice:\n")
		for _, a := range s.Advice {
			fmt.Fprintf(&txt, "  - %s\n", a)
		}
	}
	top := make([]*export.Summary, len(sums))
	for i, s := range sums {
		c := *s
		c.Sources = c.Sources[:min(10, len(c.Sources))]
		top[i] = &c
	}
	var html bytes.Buffer
	err := htmlBody.Execute(&html, map[string]any{"Frequency": freq, "From": from, "To": to, "Sums": top})
	return txt.String(), html.String(), err
}
