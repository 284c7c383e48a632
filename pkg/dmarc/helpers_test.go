package dmarc

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// testReport is a small valid report; %s is where the records go.
const testReport = `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>Example Org</org_name>
    <email>dmarc@example.org</email>
    <report_id>r-1</report_id>
    <date_range><begin>1704067200</begin><end>1704153599</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
%s
</feedback>
`

func report(records ...string) string {
	return fmt.Sprintf(testReport, strings.Join(records, "\n"))
}

// record is a record with the given source_ip and count texts.
func record(ip, count string) string {
	return `  <record>
    <row>
      <source_ip>` + ip + `</source_ip>
      <count>` + count + `</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim></auth_results>
  </record>`
}

// wantErr checks that err wraps sentinel and mentions every fragment.
func wantErr(t *testing.T, err, sentinel error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %q", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %q", err, sentinel)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func mustParse(t *testing.T, doc string) *Report {
	t.Helper()
	rep, err := ParseBytes([]byte(doc), Limits{})
	if err != nil {
		t.Fatalf("ParseBytes: %v", err)
	}
	// The streaming path must agree with the in-memory one, whatever the read sizes.
	viaReader, err := Parse(&smallReads{r: strings.NewReader(doc)}, Limits{})
	if err != nil {
		t.Fatalf("Parse over 7-byte reads: %v", err)
	}
	if !reflect.DeepEqual(viaReader, rep) {
		t.Fatalf("Parse and ParseBytes differ:\n%+v\n%+v", viaReader, rep)
	}
	return rep
}

func hasWarning(rep *Report, fragment string) bool {
	for _, w := range rep.Warnings {
		if strings.Contains(w, fragment) {
			return true
		}
	}
	return false
}

// smallReads returns at most 7 bytes per Read, to cross every buffer boundary.
type smallReads struct{ r io.Reader }

func (s *smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }

// genReader produces prefix, then n units, then suffix, without holding them. A unit is the
// string unit, or unitAt(i) for the i-th unit when unitAt is set.
type genReader struct {
	prefix, unit, suffix string
	unitAt               func(i int64) string
	n, i                 int64
	buf                  []byte
	onRead               func() // called every time a unit is produced; may be nil
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.prefix != "":
			g.buf, g.prefix = []byte(g.prefix), ""
		case g.n > 0:
			if g.unitAt != nil {
				g.buf = append(g.buf[:0], g.unitAt(g.i)...)
			} else {
				g.buf = append(g.buf[:0], g.unit...)
			}
			g.n--
			g.i++
			if g.onRead != nil {
				g.onRead()
			}
		case g.suffix != "":
			g.buf, g.suffix = []byte(g.suffix), ""
		default:
			return 0, io.EOF
		}
	}
	k := copy(p, g.buf)
	g.buf = g.buf[k:]
	return k, nil
}

// heapPeak samples HeapInuse; reading MemStats stops the world, so callers sample sparingly.
type heapPeak struct{ base, peak uint64 }

func newHeapPeak() *heapPeak {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapPeak{base: m.HeapInuse, peak: m.HeapInuse}
}

func (h *heapPeak) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

func (h *heapPeak) growthMiB() float64 { return float64(h.peak-h.base) / (1 << 20) }
