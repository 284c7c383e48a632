package export

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/signintech/gopdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/vigilhq/vigil/pkg/analytics"
)

// Page geometry (points, A4 portrait).
const (
	pageW, pageH = 595.28, 841.89
	margin       = 40.0
	contentW     = pageW - 2*margin
	footerY      = pageH - 24
	bottom       = pageH - 50 // lowest baseline of content
)

type rgb struct{ r, g, b uint8 }

var (
	colText  = rgb{33, 37, 41}
	colMuted = rgb{108, 117, 125}
	colPass  = rgb{46, 139, 87}
	colFail  = rgb{200, 60, 60}
	colGrid  = rgb{222, 226, 230}
	colHead  = rgb{221, 228, 238}
	colDisp  = []rgb{{46, 139, 87}, {240, 173, 78}, {200, 60, 60}, {91, 192, 222}, {160, 160, 160}}
)

// pdfDoc wraps gopdf with a cursor and the few drawing helpers the summary needs. Every text
// drawn in a box goes through fit, so nothing overflows its cell however long a reporter's
// name or a PTR is (the 1,000-source test checks the layout with pdftotext -bbox).
type pdfDoc struct {
	gp *gopdf.GoPdf
	y  float64
}

func newPDF() (*pdfDoc, error) {
	gp := &gopdf.GoPdf{}
	gp.Start(gopdf.Config{PageSize: *gopdf.PageSizeA4})
	// Fonts come from bytes compiled in (the Go fonts, BSD licence): nothing is read from
	// the system, so the file is the same on every host and in a scratch container.
	if err := gp.AddTTFFontData("go", goregular.TTF); err != nil {
		return nil, fmt.Errorf("pdf font: %w", err)
	}
	if err := gp.AddTTFFontData("gob", gobold.TTF); err != nil {
		return nil, fmt.Errorf("pdf font: %w", err)
	}
	d := &pdfDoc{gp: gp}
	d.page()
	return d, nil
}

func (d *pdfDoc) page() {
	d.gp.AddPage()
	d.y = margin
}

// need starts a new page unless h points fit below the cursor.
func (d *pdfDoc) need(h float64) {
	if d.y+h > bottom {
		d.page()
	}
}

func (d *pdfDoc) font(bold bool, size float64) {
	fam := "go"
	if bold {
		fam = "gob"
	}
	_ = d.gp.SetFont(fam, "", size) // both families were added in newPDF
}

func (d *pdfDoc) color(c rgb)     { d.gp.SetTextColor(c.r, c.g, c.b) }
func (d *pdfDoc) fillColor(c rgb) { d.gp.SetFillColor(c.r, c.g, c.b) }

// fit shortens s with an ellipsis until it is at most w points wide in the current font.
func (d *pdfDoc) fit(s string, w float64) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if tw, err := d.gp.MeasureTextWidth(s); err == nil && tw <= w {
		return s
	}
	rs := []rune(s)
	for len(rs) > 0 {
		rs = rs[:len(rs)-1]
		t := string(rs) + "…"
		if tw, err := d.gp.MeasureTextWidth(t); err == nil && tw <= w {
			return t
		}
	}
	return ""
}

// text draws s with its baseline at (x, y), fitted to w; right aligns it in w.
func (d *pdfDoc) text(x, y, w float64, s string, right bool) {
	s = d.fit(s, w)
	if right {
		if tw, err := d.gp.MeasureTextWidth(s); err == nil {
			x += w - tw
		}
	}
	d.gp.SetXY(x, y)
	_ = d.gp.Text(s)
}

func (d *pdfDoc) heading(s string) {
	d.need(40)
	d.y += 10
	d.font(true, 13)
	d.color(colText)
	d.text(margin, d.y+12, contentW, s, false)
	d.y += 20
}

func (d *pdfDoc) rect(x, y, w, h float64, c rgb) {
	if w <= 0 || h <= 0 {
		return
	}
	d.fillColor(c)
	d.gp.RectFromUpperLeftWithStyle(x, y, w, h, "F")
}

// tableCol is one column of a table: its title, width share and alignment.
type tableCol struct {
	title string
	w     float64 // points
	right bool
}

// table draws a header and rows, breaking pages as needed and repeating the header.
func (d *pdfDoc) table(cols []tableCol, rows [][]string) {
	const rowH = 14.0
	header := func() {
		d.rect(margin, d.y, contentW, rowH, colHead)
		d.font(true, 8)
		d.color(colText)
		x := margin
		for _, c := range cols {
			d.text(x+3, d.y+10, c.w-6, c.title, c.right)
			x += c.w
		}
		d.y += rowH
	}
	d.need(2 * rowH)
	header()
	d.font(false, 8)
	for i, r := range rows {
		if d.y+rowH > bottom {
			d.page()
			header()
			d.font(false, 8)
		}
		if i%2 == 1 {
			d.rect(margin, d.y, contentW, rowH, rgb{246, 248, 250})
		}
		d.color(colText)
		x := margin
		for j, c := range cols {
			d.text(x+3, d.y+10, c.w-6, r[j], c.right)
			x += c.w
		}
		d.y += rowH
	}
	d.y += 6
}

func pct(p *float64) string {
	if p == nil {
		return "–"
	}
	return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
}

func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// writePDF renders the summary: header and KPIs, charts, tables, advice, page numbers.
func writePDF(w io.Writer, s *Summary) error {
	d, err := newPDF()
	if err != nil {
		return err
	}
	d.gp.SetInfo(gopdf.PdfInfo{Title: "Vigil DMARC summary: " + s.Scope, Creator: "Vigil", Producer: "Vigil", CreationDate: s.Generated})
	d.font(true, 18)
	d.color(colText)
	d.text(margin, d.y+18, contentW, "DMARC summary: "+s.Scope, false)
	d.y += 28
	d.font(false, 9)
	d.color(colMuted)
	d.text(margin, d.y+9, contentW, "Generated at "+s.Generated.Format("2006-01-02 15:04 UTC")+" by Vigil", false)
	d.y += 13
	d.text(margin, d.y+9, contentW, "Filters: "+s.Filters+window(s.KPIs.Window), false)
	d.y += 20
	d.kpis(s)
	d.heading("Messages over time (" + s.Timeline.Interval + ")")
	d.timeline(s.Timeline)
	d.heading("Dispositions")
	k := s.KPIs.Dispositions
	d.hbar([]string{"none", "quarantine", "reject", "pass", "other"}, []int64{k.None, k.Quarantine, k.Reject, k.Pass, k.Other})
	d.heading("DKIM / SPF alignment")
	b := s.Breakdown
	d.hbar([]string{"both", "DKIM only", "SPF only", "neither"}, []int64{b.Both.Messages, b.DKIMOnly.Messages, b.SPFOnly.Messages, b.Neither.Messages})

	d.heading(fmt.Sprintf("Top sources (%d of %s)", len(s.Sources), num(s.SourcesAll)))
	d.sources(s.Sources)
	d.heading("Top senders")
	rows := make([][]string, len(s.Senders))
	for i, x := range s.Senders {
		rate := x.PassRate()
		rows[i] = []string{x.Name, strconv.Itoa(x.Sources), num(x.Messages), pct(&rate)}
	}
	d.table([]tableCol{{"sender", 300, false}, {"sources", 65, true}, {"messages", 80, true}, {"pass rate", contentW - 445, true}}, rows)
	d.heading("Failing sources")
	d.sources(s.Failing)
	d.heading("Top reporters")
	rows = make([][]string, len(s.Reporters))
	for i, o := range s.Reporters {
		rows[i] = []string{o.OrgName, num(o.Messages), num(o.DMARCFailMessages), pct(o.DMARCPassRate)}
	}
	d.table([]tableCol{{"reporter", 265, false}, {"messages", 80, true}, {"failing", 80, true}, {"pass rate", contentW - 425, true}}, rows)
	d.heading("Policy")
	rows = rows[:0]
	for _, p := range s.Policy {
		var pubs []string
		for _, pub := range p.Published {
			pubs = append(pubs, pub.Policy+" "+num(pub.Messages))
		}
		rows = append(rows, []string{p.Domain, strings.Join(pubs, ", "), num(p.Messages), pct(p.ComplianceRate)})
	}
	d.table([]tableCol{{"domain", 160, false}, {"published (messages)", 185, false}, {"messages", 80, true}, {"compliance", contentW - 425, true}}, rows)
	d.heading("Advice")
	d.font(false, 9)
	d.color(colText)
	for _, a := range s.Advice {
		for _, line := range d.wrap("• "+a, contentW) {
			d.need(13)
			d.text(margin, d.y+10, contentW, line, false)
			d.y += 13
		}
	}
	d.footers(s)
	_, err = d.gp.WriteTo(w)
	return err
}

func window(w analytics.Window) string {
	if w.Start == nil && w.End == nil {
		return ""
	}
	return fmt.Sprintf(" (data %s to %s)", deref(w.Start), deref(w.End))
}

// footers numbers every page once all exist ("page 2 of 5").
func (d *pdfDoc) footers(s *Summary) {
	n := d.gp.GetNumberOfPages()
	for i := 1; i <= n; i++ {
		_ = d.gp.SetPage(i)
		d.font(false, 8)
		d.color(colMuted)
		d.text(margin, footerY, contentW/2, "Vigil · "+s.Scope+" · "+s.Generated.Format("2006-01-02"), false)
		d.text(margin+contentW/2, footerY, contentW/2, fmt.Sprintf("Page %d of %d", i, n), true)
	}
}

// wrap breaks s into lines at most w points wide (words longer than a line are fitted).
func (d *pdfDoc) wrap(s string, w float64) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		try := strings.TrimSpace(cur + " " + word)
		if tw, err := d.gp.MeasureTextWidth(try); err == nil && tw <= w {
			cur = try
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
		}
		cur = word
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func (d *pdfDoc) kpis(s *Summary) {
	k := s.KPIs
	items := [][2]string{
		{"Messages", num(k.TotalMessages)}, {"DMARC pass rate", pct(k.DMARCPassRate)}, {"Failing messages", num(k.DMARCFailMessages)},
		{"Reports", num(k.TotalReports)}, {"Sources", num(k.Sources)}, {"Reporters", num(k.Reporters)},
	}
	const gap, h = 8.0, 42.0
	w := (contentW - 2*gap) / 3
	for i, it := range items {
		x := margin + float64(i%3)*(w+gap)
		y := d.y + float64(i/3)*(h+gap)
		d.rect(x, y, w, h, rgb{246, 248, 250})
		d.font(false, 8)
		d.color(colMuted)
		d.text(x+8, y+13, w-16, it[0], false)
		d.font(true, 15)
		d.color(colText)
		d.text(x+8, y+33, w-16, it[1], false)
	}
	d.y += 2*h + gap + 6
}

// timeline draws stacked bars (passing below, failing above) per period, with a y scale.
func (d *pdfDoc) timeline(t analytics.Timeline) {
	const h = 120.0
	d.need(h + 30)
	x0, y0, w := margin+40, d.y, contentW-40
	var top int64
	for _, p := range t.Points {
		top = max(top, p.Messages)
	}
	d.gp.SetStrokeColor(colGrid.r, colGrid.g, colGrid.b)
	d.gp.SetLineWidth(0.5)
	d.font(false, 7)
	d.color(colMuted)
	for i := 0; i <= 4; i++ {
		y := y0 + h - float64(i)*h/4
		d.gp.Line(x0, y, x0+w, y)
		d.text(margin, y+3, 36, num(top*int64(i)/4), true)
	}
	if n := len(t.Points); n > 0 && top > 0 {
		bw := w / float64(n)
		for i, p := range t.Points {
			x := x0 + float64(i)*bw + bw*0.1
			ph := h * float64(p.DMARCPassMessages) / float64(top)
			fh := h * float64(p.DMARCFailMessages) / float64(top)
			d.rect(x, y0+h-ph, bw*0.8, ph, colPass)
			d.rect(x, y0+h-ph-fh, bw*0.8, fh, colFail)
		}
		d.text(x0, y0+h+10, w/2, t.Points[0].Start, false)
		d.text(x0+w/2, y0+h+10, w/2, t.Points[n-1].Start, true)
	} else {
		d.text(x0, y0+h/2, w, "no data in this period", false)
	}
	d.y += h + 16
	d.legend([]string{"DMARC pass", "DMARC fail"}, []rgb{colPass, colFail})
}

func (d *pdfDoc) legend(names []string, cols []rgb) {
	d.font(false, 8)
	x := margin
	for i, n := range names {
		d.rect(x, d.y+2, 8, 8, cols[i])
		d.color(colText)
		d.text(x+11, d.y+9, 90, n, false)
		x += 100
	}
	d.y += 14
}

// hbar draws one horizontal bar split by share, with a legend of counts.
func (d *pdfDoc) hbar(names []string, vals []int64) {
	d.need(40)
	var total int64
	for _, v := range vals {
		total += v
	}
	x := margin
	if total > 0 {
		for i, v := range vals {
			w := contentW * float64(v) / float64(total)
			d.rect(x, d.y, w, 14, colDisp[i%len(colDisp)])
			x += w
		}
	} else {
		d.rect(margin, d.y, contentW, 14, colGrid)
	}
	d.y += 18
	labels := make([]string, len(names))
	for i, n := range names {
		share := 0.0
		if total > 0 {
			share = float64(vals[i]) / float64(total)
		}
		labels[i] = fmt.Sprintf("%s %s (%s)", n, num(vals[i]), pct(&share))
	}
	d.font(false, 7)
	xx := margin
	w := contentW / float64(len(labels))
	for i, l := range labels {
		d.rect(xx, d.y+2, 7, 7, colDisp[i%len(colDisp)])
		d.color(colText)
		d.text(xx+10, d.y+8, w-12, l, false)
		xx += w
	}
	d.y += 14
}

func (d *pdfDoc) sources(items []analytics.Source) {
	rows := make([][]string, len(items))
	for i, it := range items {
		name := deref(it.Sender)
		if name == "" {
			name = deref(it.PTR)
		}
		rows[i] = []string{it.SourceIP, name, deref(it.Country), num(it.Messages), num(it.DMARCFailMessages), pct(it.DMARCPassRate)}
	}
	d.table([]tableCol{{"source IP", 150, false}, {"sender / PTR", 150, false}, {"country", 45, false},
		{"messages", 60, true}, {"failing", 55, true}, {"pass rate", contentW - 460, true}}, rows)
}
