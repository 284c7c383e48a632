package export

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/vigilhq/vigil/pkg/store"
)

// Neutralise makes a text cell safe to open in a spreadsheet: one starting with = + - @, a
// tab, a carriage return or NUL would be read as a formula (OWASP "CSV injection";
// SECURITY-CASES D.33), so it gets a leading apostrophe. Numeric columns never pass through
// here, so -1 stays a number.
func Neutralise(s string) string {
	if s == "" {
		return s
	}
	if needsNeutralising(s[0]) {
		return "'" + s
	}
	return s
}

func needsNeutralising(b byte) bool {
	switch b {
	case '=', '+', '-', '@', '\t', '\r', 0:
		return true
	}
	return false
}

// csvWriter writes RFC 4180 rows (CRLF line ends, fields quoted only when they must be) into
// one reused buffer that goes to w whenever it passes 64 KiB: no value is allocated per cell,
// which at a million rows is most of the CPU encoding/csv spent (a []string per row, each
// field searched for specials rune by rune). Fields are written from bytes, so database rows
// go out without becoming Go strings first.
type csvWriter struct {
	w   io.Writer
	buf []byte
	col int // fields written in the current row
}

const csvFlushAt = 64 << 10

func newCSVWriter(w io.Writer) *csvWriter {
	return &csvWriter{w: w, buf: make([]byte, 0, csvFlushAt+4096)}
}

// csvSpecial marks the bytes that force a field into quotes.
var csvSpecial = [256]bool{',': true, '"': true, '\r': true, '\n': true}

func (c *csvWriter) sep() {
	if c.col > 0 {
		c.buf = append(c.buf, ',')
	}
	c.col++
}

// text writes a text field; neutralise guards it against formula injection (see Neutralise).
func (c *csvWriter) text(b []byte, neutralise bool) {
	c.sep()
	if len(b) == 0 {
		return
	}
	lead := neutralise && needsNeutralising(b[0])
	// A leading space would be trimmed by some readers, and \. ends PostgreSQL's COPY data;
	// behind the apostrophe neither matters.
	quote := !lead && (b[0] == ' ' || b[0] == '\t' || len(b) == 2 && b[0] == '\\' && b[1] == '.')
	if !quote {
		for _, ch := range b {
			if csvSpecial[ch] {
				quote = true
				break
			}
		}
	}
	if !quote {
		if lead {
			c.buf = append(c.buf, '\'')
		}
		c.buf = append(c.buf, b...)
		return
	}
	c.buf = append(c.buf, '"')
	if lead {
		c.buf = append(c.buf, '\'')
	}
	for {
		i := bytes.IndexByte(b, '"')
		if i < 0 {
			break
		}
		c.buf = append(c.buf, b[:i+1]...)
		c.buf = append(c.buf, '"')
		b = b[i+1:]
	}
	c.buf = append(c.buf, b...)
	c.buf = append(c.buf, '"')
}

// str is text for a Go string (the append does not allocate).
func (c *csvWriter) str(s string, neutralise bool) {
	c.text(unsafe.Slice(unsafe.StringData(s), len(s)), neutralise)
}

func (c *csvWriter) int(n int64) {
	c.sep()
	c.buf = strconv.AppendInt(c.buf, n, 10)
}

func (c *csvWriter) float(f float64) {
	c.sep()
	c.buf = strconv.AppendFloat(c.buf, f, 'f', -1, 64)
}

func (c *csvWriter) time(t time.Time) {
	c.sep()
	c.buf = t.UTC().AppendFormat(c.buf, time.RFC3339Nano)
}

func (c *csvWriter) null() { c.sep() }

// value writes a view's value by its column's kind: the JSON value's text, empty for null.
func (c *csvWriter) value(k kind, v any) {
	switch x := v.(type) {
	case string:
		c.str(x, k == kText)
	case int64:
		c.int(x)
	case *float64:
		if x == nil {
			c.null()
		} else {
			c.float(*x)
		}
	case float64:
		c.float(x)
	case time.Time:
		c.time(x)
	default:
		c.null()
	}
}

// end ends the row, sending the buffer on once it is large enough.
func (c *csvWriter) end() error {
	c.buf = append(c.buf, '\r', '\n')
	c.col = 0
	if len(c.buf) >= csvFlushAt {
		return c.flush()
	}
	return nil
}

func (c *csvWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// writeCSV streams a view as RFC 4180 CSV (CRLF line ends, UTF-8, header row of JSON field
// names): each row goes out as it is read, through a 64 KiB buffer, so memory stays flat
// whatever the row count. It returns the rows written.
func writeCSV(ctx context.Context, w io.Writer, v view, f store.Filter) (int64, error) {
	cw := newCSVWriter(w)
	for _, c := range v.cols {
		cw.str(c.name, false)
	}
	if err := cw.end(); err != nil {
		return 0, err
	}
	var n int64
	var err error
	if v.csv != nil {
		n, err = v.csv(ctx, f, cw)
	} else {
		err = v.each(ctx, f, func(row []any) error {
			for i, c := range v.cols {
				cw.value(c.kind, row[i])
			}
			n++
			return cw.end()
		})
	}
	if err != nil {
		return n, err
	}
	return n, cw.flush()
}

// filterSummary says in words which filters made a file (PDF header, e-mail).
func filterSummary(f store.Filter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if f.Report != 0 {
		add("report", itoa(f.Report))
	}
	add("domain", f.Domain)
	add("org_name", f.OrgName)
	if !f.Start.IsZero() {
		add("start", f.Start.UTC().Format("2006-01-02"))
	}
	if !f.End.IsZero() {
		add("end", f.End.UTC().Add(-time.Nanosecond).Format("2006-01-02"))
	}
	if f.SourceIP.IsValid() {
		add("source_ip", f.SourceIP.String())
	}
	if f.SourceRange.IsValid() {
		add("source_ip_range", f.SourceRange.String())
	}
	add("dkim_result", f.DKIM)
	add("spf_result", f.SPF)
	add("disposition", f.Disposition)
	if len(parts) == 0 {
		return "all domains, all time"
	}
	return strings.Join(parts, ", ")
}
