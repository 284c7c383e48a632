package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/xuri/excelize/v2"
)

// The rows of a large sheet are encoded here rather than by excelize's StreamWriter.SetRow,
// which spent about 17 CPU-s on 1M records (profile: a cell reference string, a style lookup,
// an xlsxC value and its inline-string structs, xml.EscapeText into a new builder and a
// regexp pass per cell: most of it allocation). rowWriter writes the same SpreadsheetML
// (<row r="N"><c r="A2" t="inlineStr"><is><t>…</t></is></c>…, numbers in <v>, dates as
// serial numbers with the date style) into a temporary file; excelize still writes every
// other part of the workbook (sheet with its column widths, frozen panes and styled header,
// styles, workbook, content types), with one marker row in place of the data, and
// spliceZip swaps the marker row for the file as the zip is written.

// rowWriter encodes rows of typed cells into a temporary file.
type rowWriter struct {
	f      *os.File
	w      *bufio.Writer
	buf    []byte
	row    int    // current row number (1-based, the header is row 1)
	marker string // the text of the marker cell excelize writes in row 2
	refs   [][]byte
}

func newRowWriter(ncols int) (*rowWriter, error) {
	f, err := os.CreateTemp("", "vigil-xlsx-rows-")
	if err != nil {
		return nil, err
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	rw := &rowWriter{f: f, w: bufio.NewWriterSize(f, 256<<10), buf: make([]byte, 0, 8192), row: 1,
		marker: "vigil-xlsx-rows-" + hex.EncodeToString(rnd[:])}
	for i := 1; i <= ncols; i++ {
		name, err := excelize.ColumnNumberToName(i)
		if err != nil {
			rw.close()
			return nil, err
		}
		rw.refs = append(rw.refs, []byte(name))
	}
	return rw, nil
}

func (rw *rowWriter) close() {
	if rw.f != nil {
		rw.f.Close()
		os.Remove(rw.f.Name())
		rw.f = nil
	}
}

// begin starts the next row.
func (rw *rowWriter) begin() {
	rw.row++
	rw.buf = append(rw.buf[:0], `<row r="`...)
	rw.buf = strconv.AppendInt(rw.buf, int64(rw.row), 10)
	rw.buf = append(rw.buf, `">`...)
}

// end ends the row.
func (rw *rowWriter) end() error {
	rw.buf = append(rw.buf, `</row>`...)
	_, err := rw.w.Write(rw.buf)
	return err
}

func (rw *rowWriter) cellStart(col, style int, typ string) {
	rw.buf = append(rw.buf, `<c r="`...)
	rw.buf = append(rw.buf, rw.refs[col]...)
	rw.buf = strconv.AppendInt(rw.buf, int64(rw.row), 10)
	rw.buf = append(rw.buf, '"')
	if style != 0 {
		rw.buf = append(rw.buf, ` s="`...)
		rw.buf = strconv.AppendInt(rw.buf, int64(style), 10)
		rw.buf = append(rw.buf, '"')
	}
	if typ != "" {
		rw.buf = append(rw.buf, ` t="`...)
		rw.buf = append(rw.buf, typ...)
		rw.buf = append(rw.buf, '"')
	}
	rw.buf = append(rw.buf, '>')
}

// number writes a numeric cell from its digits.
func (rw *rowWriter) number(col, style int, digits []byte) {
	rw.cellStart(col, style, "")
	rw.buf = append(rw.buf, `<v>`...)
	rw.buf = append(rw.buf, digits...)
	rw.buf = append(rw.buf, `</v></c>`...)
}

func (rw *rowWriter) int(col int, n int64) {
	rw.cellStart(col, 0, "")
	rw.buf = append(rw.buf, `<v>`...)
	rw.buf = strconv.AppendInt(rw.buf, n, 10)
	rw.buf = append(rw.buf, `</v></c>`...)
}

func (rw *rowWriter) float(col int, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		rw.str(col, fmt.Sprint(f))
		return
	}
	rw.cellStart(col, 0, "")
	rw.buf = append(rw.buf, `<v>`...)
	rw.buf = strconv.AppendFloat(rw.buf, f, 'f', -1, 64)
	rw.buf = append(rw.buf, `</v></c>`...)
}

// time writes a date cell: Excel's serial day number (1900 system) in the date style, as
// excelize's setCellTime does; a time before 1900 stays text.
func (rw *rowWriter) time(col, style int, t time.Time) {
	serial := excelTime(t.UTC())
	if serial <= 0 {
		rw.str(col, t.UTC().Format(time.RFC3339Nano))
		return
	}
	rw.cellStart(col, style, "")
	rw.buf = append(rw.buf, `<v>`...)
	rw.buf = strconv.AppendFloat(rw.buf, serial, 'f', -1, 64)
	rw.buf = append(rw.buf, `</v></c>`...)
}

var (
	excelMinTime1900      = time.Date(1899, time.December, 31, 0, 0, 0, 0, time.UTC)
	excelBuggyPeriodStart = time.Date(1900, time.March, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
)

// excelTime is excelize's timeToExcelTime for the 1900 date system (the same arithmetic, so
// the same float).
func excelTime(t time.Time) float64 {
	const day = 24 * time.Hour
	const maxDuration = 290 * 364 * day
	if t.Before(excelMinTime1900) {
		return 0
	}
	tt, diff, result := t, t.Sub(excelMinTime1900), 0.0
	for diff >= maxDuration {
		result += float64(maxDuration / day)
		tt = tt.Add(-maxDuration)
		diff = tt.Sub(excelMinTime1900)
	}
	rem := diff % day
	result += float64(diff-rem)/float64(day) + float64(rem)/float64(day)
	if t.After(excelBuggyPeriodStart) {
		result++
	}
	return result
}

// plainXML marks the bytes a text cell can carry as they are: printable ASCII but the XML
// specials (& < > " ') and the underscore (which may start an _xHHHH_ escape).
var plainXML = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `&<>"'_` {
		t[c] = false
	}
	return t
}()

// totalCellChars is Excel's limit on a cell's text, in UTF-16 units (excelize.TotalCellChars).
const totalCellChars = excelize.TotalCellChars

func (rw *rowWriter) str(col int, s string) { rw.text(col, s) }

// value writes a view's value as book.cell types it for excelize: nothing for nil, text for
// strings (ids included), numbers for counts and rates, a date cell for a time.
func (rw *rowWriter) value(col, dateStyle int, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		rw.text(col, x)
	case int64:
		rw.int(col, x)
	case int:
		rw.int(col, int64(x))
	case int32:
		rw.int(col, int64(x))
	case uint32:
		rw.int(col, int64(x))
	case uint64:
		rw.number(col, 0, strconv.AppendUint(nil, x, 10))
	case *float64:
		if x != nil {
			rw.float(col, *x)
		}
	case float64:
		rw.float(col, x)
	case float32:
		rw.float(col, float64(x))
	case time.Time:
		rw.time(col, dateStyle, x)
	case bool:
		rw.cellStart(col, 0, "b")
		if x {
			rw.buf = append(rw.buf, `<v>1</v></c>`...)
		} else {
			rw.buf = append(rw.buf, `<v>0</v></c>`...)
		}
	default:
		rw.text(col, fmt.Sprint(x))
	}
}

// text writes an inline-string cell as excelize does: cut to Excel's 32,767 UTF-16 units,
// xml:space="preserve" when it starts or ends with white space, XML-escaped (invalid
// characters become U+FFFD, as encoding/xml writes them), and an underscore that would start
// an _xHHHH_ escape itself escaped as _x005F_, so readers give back the text written. An
// empty string is an empty inline string, as excelize writes it.
func (rw *rowWriter) text(col int, s string) {
	rw.cellStart(col, 0, "inlineStr")
	if len(s) > totalCellChars { // bytes >= UTF-16 units, so only a long string can be over
		s = truncateUTF16(s, totalCellChars)
	}
	rw.buf = append(rw.buf, `<is><t`...)
	if s != "" {
		switch s[0] {
		case 9, 10, 13, 32:
			rw.buf = append(rw.buf, ` xml:space="preserve"`...)
		default:
			switch s[len(s)-1] {
			case 9, 10, 13, 32:
				rw.buf = append(rw.buf, ` xml:space="preserve"`...)
			}
		}
	}
	rw.buf = append(rw.buf, '>')
	plain := true
	for i := 0; i < len(s); i++ {
		if !plainXML[s[i]] {
			plain = false
			break
		}
	}
	if plain {
		rw.buf = append(rw.buf, s...)
	} else if ascii(s) {
		rw.buf = appendEscapedASCII(rw.buf, s)
	} else {
		rw.buf = appendEscaped(rw.buf, s)
	}
	rw.buf = append(rw.buf, `</t></is></c>`...)
}

// appendEscaped is the slow path of text: encoding/xml's escaping as excelize applies it (a
// newline kept as is), then the _xHHHH_ guard.
func appendEscaped(dst []byte, s string) []byte {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	esc := strings.ReplaceAll(b.String(), "&#xA;", "\n")
	for i := 0; i < len(esc); i++ {
		if esc[i] == '_' && isBstrEscape(esc[i:]) {
			dst = append(dst, "_x005F_"...)
			continue
		}
		dst = append(dst, esc[i])
	}
	return dst
}

// ascii says whether s is printable ASCII only (no control character, nothing over 0x7e).
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// appendEscapedASCII is appendEscaped for printable ASCII (JSON lists with their quotes and
// underscores): the same entities encoding/xml writes, without its per-rune pass.
func appendEscapedASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&#34;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		case '_':
			if isBstrEscape(s[i:]) {
				dst = append(dst, "_x005F_"...)
			} else {
				dst = append(dst, c)
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// isBstrEscape says whether s starts with _xHHHH_ (an ST_Xstring escape readers decode).
func isBstrEscape(s string) bool {
	if len(s) < 7 || s[0] != '_' || s[1] != 'x' || s[6] != '_' {
		return false
	}
	for _, c := range []byte(s[2:6]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func truncateUTF16(s string, n int) string {
	cnt := 0
	for i, r := range s {
		if cnt += utf16.RuneLen(r); cnt > n {
			return s[:i]
		}
	}
	return s
}

// flush ends the rows: the file is complete once it returns.
func (rw *rowWriter) flush() error { return rw.w.Flush() }

// spliceZip is the zip writer excelize writes the workbook through: every entry goes to zw,
// but a worksheet entry holding a rowWriter's marker has the marker's row replaced by that
// writer's rows. Worksheet entries are held until the next entry starts (the sheets whose rows
// are spliced are a few kilobytes from excelize: widths, panes, header, marker; the summary
// sheet is as small).
type spliceZip struct {
	zw      *zip.Writer
	rows    []*rowWriter
	name    string       // the worksheet entry being held, "" when none
	held    bytes.Buffer // its bytes
	spliced int          // marker rows replaced
	err     error
}

func (z *spliceZip) Create(name string) (io.Writer, error) {
	if err := z.release(); err != nil {
		return nil, err
	}
	if strings.HasPrefix(name, "xl/worksheets/") && strings.HasSuffix(name, ".xml") {
		z.name = name
		z.held.Reset()
		return &z.held, nil
	}
	return z.zw.Create(name)
}

// release writes the held worksheet entry, splicing in the rows of the marker it holds.
func (z *spliceZip) release() error {
	if z.name == "" {
		return nil
	}
	name := z.name
	z.name = ""
	w, err := z.zw.Create(name)
	if err != nil {
		return err
	}
	data := z.held.Bytes()
	for _, rw := range z.rows {
		at := bytes.Index(data, []byte(rw.marker))
		if at < 0 {
			continue
		}
		start := bytes.LastIndex(data[:at], []byte(`<row `))
		stop := bytes.Index(data[at:], []byte(`</row>`))
		if start < 0 || stop < 0 {
			return fmt.Errorf("export: marker row of %s not found whole", name)
		}
		stop += at + len(`</row>`)
		if _, err := w.Write(data[:start]); err != nil {
			return err
		}
		if _, err := rw.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(w, rw.f); err != nil {
			return err
		}
		z.spliced++
		_, err = w.Write(data[stop:])
		return err
	}
	_, err = w.Write(data)
	return err
}

func (z *spliceZip) AddFS(fsys fs.FS) error { return z.zw.AddFS(fsys) }

func (z *spliceZip) Close() error {
	if err := z.release(); err != nil {
		return err
	}
	if z.spliced != len(z.rows) {
		return fmt.Errorf("export: %d of %d sheets' rows written", z.spliced, len(z.rows))
	}
	return z.zw.Close()
}
