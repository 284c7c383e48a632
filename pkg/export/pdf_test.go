package export_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// needPoppler skips when Debian's poppler-utils are absent (.ci/run installs them).
func needPoppler(t *testing.T) {
	t.Helper()
	for _, b := range []string{"pdftotext", "pdftoppm"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not found: install Debian's poppler-utils (.ci/run does) to check the PDF", b)
		}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "summary.pdf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pdftotext(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("pdftotext", append(args, path, "-")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	return string(out)
}

// renderPages renders every page to PNG and returns how many there are.
func renderPages(t *testing.T, path string) int {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("pdftoppm", "-png", "-r", "40", path, filepath.Join(dir, "p")).CombinedOutput()
	if err != nil || len(out) > 0 && strings.Contains(string(out), "Error") {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "p-*.png"))
	return len(pngs)
}

// TestPDF: pdftotext finds the KPIs, the top source, the filters and the page numbers;
// pdftoppm renders every page; the domain filter is honoured.
func TestPDF(t *testing.T) {
	needPoppler(t)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		world(t, st, 60)
		f := newFixture(t, b, st, options{})
		for _, q := range []url.Values{{}, {"domain": {"hostile.example"}}, {"days": {"30"}}} {
			rec := f.get(t, f.creds[auth.Viewer], "/api/export/report/pdf", q)
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/pdf" {
				t.Fatalf("%v: %d %s", q, rec.Code, rec.Body.String())
			}
			var sum struct {
				TotalMessages int64 `json:"total_messages"`
				TotalReports  int64 `json:"total_reports"`
			}
			f.getJSON(t, f.creds[auth.Viewer], "/api/rollup/summary", q, &sum)
			var src struct {
				Items []struct {
					SourceIP string `json:"source_ip"`
				} `json:"items"`
			}
			f.getJSON(t, f.creds[auth.Viewer], "/api/rollup/sources", q, &src)
			path := writeTemp(t, rec.Body.Bytes())
			text := pdftotext(t, path)
			wants := []string{"DMARC summary", groupDigits(sum.TotalMessages), groupDigits(sum.TotalReports), "Page 1 of", "Generated at"}
			if len(src.Items) > 0 {
				wants = append(wants, src.Items[0].SourceIP)
			}
			if d := q.Get("domain"); d != "" {
				wants = append(wants, "domain="+d)
			}
			for _, w := range wants {
				if !strings.Contains(text, w) {
					t.Errorf("%v: the PDF's text lacks %q", q, w)
				}
			}
			if q.Get("domain") == "hostile.example" && strings.Contains(text, "acme") {
				t.Errorf("domain filter not honoured: another domain's data in the PDF")
			}
			if n := renderPages(t, path); n < 2 || !strings.Contains(text, fmt.Sprintf("Page %d of %d", n, n)) {
				t.Errorf("%v: %d pages rendered; last page number missing", q, n)
			}
		}
	})
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// bboxDoc is pdftotext -bbox output: every word with its box.
type bboxDoc struct {
	Pages []struct {
		Width float64 `xml:"width,attr"`
		Words []struct {
			XMin float64 `xml:"xMin,attr"`
			XMax float64 `xml:"xMax,attr"`
			YMin float64 `xml:"yMin,attr"`
			Text string  `xml:",chardata"`
		} `xml:"word"`
	} `xml:"body>doc>page"`
}

// TestPDFLayoutLargeDomain: one domain over a year with 1,000 sources, long PTR-like sender
// names and reporter names: every word of every page stays inside the page margins, and no
// word of a table cell runs into the next column (source IPs sit in their column).
func TestPDFLayoutLargeDomain(t *testing.T) {
	needPoppler(t)
	b := testenv.Backends()[0]
	st := b.Store(t)
	ctx := context.Background()
	day := time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)
	var reps []store.Parsed
	for d := 0; d < 365; d += 3 {
		var recs []dmarc.Record
		for s := 0; s < 1000; s += 7 {
			i := (s + d) % 1000
			ip := netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), 1})
			if i%5 == 0 {
				ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:%x:%x:%x", i, i*7, i*13))
			}
			recs = append(recs, dmarc.Record{SourceIP: ip, Count: int64(1 + i%97*1000), Disposition: "none", DKIM: []string{"pass", "fail"}[i%2], SPF: "fail", HeaderFrom: "big.example"})
		}
		org := "A reporter with an extraordinarily long organisation name that never ends " + strings.Repeat("x", 20+d%60)
		reps = append(reps, store.Parsed{Header: &dmarc.Report{OrgName: org, ReportID: fmt.Sprint("r", d), DateBegin: day.AddDate(0, 0, d),
			DateEnd: day.AddDate(0, 0, d+1).Add(-time.Second), Policy: dmarc.Policy{Domain: "big.example", P: "none"}}, Records: recs})
	}
	save(t, st, reps)
	f := newFixture(t, b, st, options{now: func() time.Time { return time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC) }})
	var sum struct {
		Sources int64 `json:"sources"`
	}
	q := url.Values{"domain": {"big.example"}, "start": {"2023-07-01"}, "end": {"2024-06-30"}}
	f.getJSON(t, f.creds[auth.Viewer], "/api/rollup/summary", q, &sum)
	if sum.Sources < 1000 {
		t.Fatalf("fixture has %d sources, want 1000", sum.Sources)
	}
	rec := f.get(t, f.creds[auth.Viewer], "/api/export/report/pdf", q)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	path := writeTemp(t, rec.Body.Bytes())
	var doc bboxDoc
	raw := pdftotext(t, path, "-bbox")
	// pdftotext writes XHTML; its entity-free body parses as XML.
	if err := xml.Unmarshal([]byte(raw[strings.Index(raw, "<html"):]), &doc); err != nil {
		t.Fatalf("bbox output: %v", err)
	}
	if len(doc.Pages) < 2 {
		t.Fatalf("%d pages", len(doc.Pages))
	}
	const margin, sourceCol = 40.0, 150.0
	words := 0
	for pi, p := range doc.Pages {
		for _, w := range p.Words {
			words++
			if w.XMin < margin-1 || w.XMax > p.Width-margin+1 {
				t.Errorf("page %d: %q spans %.1f–%.1f, outside the margins of a %.0f-wide page", pi+1, w.Text, w.XMin, w.XMax, p.Width)
			}
			// An address in a sources table begins its row and ends before the next column.
			if _, err := netip.ParseAddr(w.Text); err == nil && w.XMin < margin+5 && w.XMax > margin+sourceCol {
				t.Errorf("page %d: address %q (%.1f–%.1f) overflows its %v-point column", pi+1, w.Text, w.XMin, w.XMax, sourceCol)
			}
		}
	}
	// No two words of a line overlap: text cut to its cell never runs into the next one.
	for pi, p := range doc.Pages {
		for i, a := range p.Words {
			for _, c := range p.Words[i+1:] {
				if math.Abs(a.YMin-c.YMin) < 1 && a.XMin < c.XMax-0.5 && c.XMin < a.XMax-0.5 {
					t.Errorf("page %d: %q (%.1f–%.1f) overlaps %q (%.1f–%.1f)", pi+1, a.Text, a.XMin, a.XMax, c.Text, c.XMin, c.XMax)
				}
			}
		}
	}
	if words < 500 {
		t.Errorf("only %d words: the tables are missing", words)
	}
	if n := renderPages(t, path); n != len(doc.Pages) {
		t.Errorf("pdftoppm rendered %d of %d pages", n, len(doc.Pages))
	}
	_ = ctx
	_ = bytes.MinRead
}
