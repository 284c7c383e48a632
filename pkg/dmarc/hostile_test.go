package dmarc

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"
)

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE feedback [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>`

// utf16Doc encodes s as UTF-16 with the given byte order, with or without a byte order mark.
func utf16Doc(s string, bigEndian, bom bool) []byte {
	units := utf16.Encode([]rune(s))
	if bom {
		units = append([]uint16{0xFEFF}, units...)
	}
	var out []byte
	for _, u := range units {
		if bigEndian {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	return out
}

func TestHostile(t *testing.T) {
	t.Parallel()
	base := report(record("192.0.2.1", "1"))
	body := strings.SplitN(base, "?>", 2)[1]
	future := strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)
	deep := "<feedback>" + strings.Repeat("<a>", 100_000) + strings.Repeat("</a>", 100_000) + "</feedback>"
	tests := []struct {
		name     string
		doc      []byte
		lim      Limits
		sentinel error
		msg      []string
	}{
		{"billion laughs", []byte(billionLaughs), Limits{}, ErrMalformed, []string{"DOCTYPE not allowed"}},
		{"undeclared entity", []byte(strings.Replace(base, "Example Org", "&lol9;", 1)), Limits{}, ErrMalformed,
			[]string{"invalid character entity &lol9;"}},
		{"XXE file://", []byte(`<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` +
			strings.Replace(body, "Example Org", "&xxe;", 1)), Limits{}, ErrMalformed, []string{"DOCTYPE not allowed"}},
		{"XXE without DOCTYPE", []byte(strings.Replace(base, "Example Org", "&xxe;", 1)), Limits{}, ErrMalformed,
			[]string{"invalid character entity &xxe;"}},
		{"DOCTYPE alone", []byte("<!DOCTYPE feedback>" + body), Limits{}, ErrMalformed, []string{"DOCTYPE not allowed"}},
		{"lower-case doctype", []byte("<!doctype feedback>" + body), Limits{}, ErrMalformed, []string{"DOCTYPE not allowed"}},
		{"ENTITY outside a DOCTYPE", []byte(`<!ENTITY x "y">` + body), Limits{}, ErrMalformed,
			[]string{"<!ENTITY not allowed"}},
		{"depth 100k", []byte(deep), Limits{}, ErrMalformed, []string{"nesting deeper than 64"}},
		{"depth 100k in a wrapper", []byte("<w>" + deep + "</w>"), Limits{}, ErrMalformed, []string{"nesting deeper than 64"}},
		{"depth cap is configurable", []byte(base), Limits{MaxDepth: 4}, ErrMalformed, []string{"nesting deeper than 4"}},
		{"two roots", []byte(base + body), Limits{}, ErrMalformed, []string{"trailing data after </feedback>"}},
		{"trailing garbage", []byte(base + "garbage"), Limits{}, ErrMalformed, []string{"trailing data after </feedback>"}},
		{"trailing end tag", []byte(base + "</feedback>"), Limits{}, ErrMalformed, []string{"trailing data after </feedback>"}},
		{"trailing data after a closed wrapper", []byte("<w>" + body + "</w><x/>"), Limits{}, ErrMalformed,
			[]string{"trailing data after </feedback>"}},
		{"element after feedback in a wrapper", []byte("<w>" + body + "<x/></w>"), Limits{}, ErrMalformed,
			[]string{"trailing data after </feedback>"}},
		{"UTF-16 BE with BOM", utf16Doc(strings.Replace(base, "UTF-8", "UTF-16", 1), true, true), Limits{},
			ErrMalformed, []string{"UTF-16 not supported"}},
		{"UTF-16 LE with BOM", utf16Doc(base, false, true), Limits{}, ErrMalformed, []string{"UTF-16 not supported"}},
		{"UTF-16 LE without BOM", utf16Doc(base, false, false), Limits{}, ErrMalformed, []string{"UTF-16 not supported"}},
		{"stray 0x91 under UTF-8", []byte(strings.Replace(base, "Example Org", "Example \x91Org", 1)), Limits{},
			ErrMalformed, []string{"invalid UTF-8", "line 4"}},
		{"invalid UTF-8 after dropped indentation", []byte(strings.Replace(base, "<header_from>example.com",
			"<header_from>bad\x91", 1)), Limits{}, ErrMalformed, []string{"invalid UTF-8", "line 18"}},
		{"unknown charset", []byte(strings.Replace(base, "UTF-8", "x-klingon", 1)), Limits{}, ErrMalformed,
			[]string{`unsupported charset "x-klingon"`}},
		{"late XML declaration", []byte(strings.Replace(base, "<report_metadata>",
			`<report_metadata><?xml version="1.0" encoding="windows-1252"?>`, 1)), Limits{}, ErrMalformed,
			[]string{"XML declaration not at the start"}},
		{"XML 1.1", []byte(strings.Replace(base, `version="1.0"`, `version="1.1"`, 1)), Limits{}, ErrMalformed,
			[]string{"unsupported version"}},
		{"truncated", []byte(base[:len(base)/2]), Limits{}, ErrMalformed, []string{"unexpected end of input"}},
		{"mismatched tags", []byte(strings.Replace(base, "</org_name>", "</orgname>", 1)), Limits{}, ErrMalformed,
			[]string{"<org_name> closed by </orgname>"}},
		{"prefix mismatch", []byte(strings.Replace(base, "</org_name>", "</x:org_name>", 1)), Limits{}, ErrMalformed,
			[]string{"closed by </x:org_name>"}},
		{"too many records", []byte(report(record("192.0.2.1", "1"), record("192.0.2.2", "1"), record("192.0.2.3", "1"))),
			Limits{MaxRecords: 2}, ErrMalformed, []string{"more than 2 records"}},
		{"token cap is configurable", []byte(strings.Replace(base, "Example Org", strings.Repeat("x", 200), 1)),
			Limits{MaxTokenBytes: 100}, ErrMalformed, []string{"exceeds 100 bytes"}},
		{"end before begin", []byte(strings.Replace(base, "<end>1704153599", "<end>1704067199", 1)), Limits{},
			ErrInvalid, []string{"ends before it begins"}},
		{"millisecond timestamps", []byte(strings.NewReplacer("<begin>1704067200", "<begin>1704067200000",
			"<end>1704153599", "<end>1704153599000").Replace(base)), Limits{}, ErrInvalid, []string{"timestamp out of range"}},
		{"negative timestamp", []byte(strings.Replace(base, "<begin>1704067200", "<begin>-1", 1)), Limits{}, ErrInvalid,
			[]string{"timestamp out of range", "begin"}},
		{"future timestamp", []byte(strings.Replace(base, "<end>1704153599", "<end>"+future, 1)), Limits{}, ErrInvalid,
			[]string{"timestamp out of range", "end"}},
		{"huge timestamp", []byte(strings.Replace(base, "<end>1704153599", "<end>99999999999999999999", 1)), Limits{},
			ErrInvalid, []string{"timestamp out of range"}},
		{"non-numeric timestamp", []byte(strings.Replace(base, "<begin>1704067200", "<begin>yesterday", 1)), Limits{},
			ErrInvalid, []string{"invalid date range", "yesterday"}},
		{"no date_range", []byte(strings.Replace(base, "<date_range><begin>1704067200</begin><end>1704153599</end></date_range>",
			"", 1)), Limits{}, ErrInvalid, []string{"no date range"}},
		{"no end", []byte(strings.Replace(base, "<end>1704153599</end>", "", 1)), Limits{}, ErrInvalid, []string{"no date range"}},
		{"empty begin", []byte(strings.Replace(base, "<begin>1704067200</begin>", "<begin> </begin>", 1)), Limits{},
			ErrInvalid, []string{"no date range"}},
		{"no policy_published", []byte(base[:strings.Index(base, "<policy_published>")] +
			base[strings.Index(base, "</policy_published>")+len("</policy_published>"):]),
			Limits{}, ErrInvalid, []string{"no policy domain (no <policy_published>)"}},
		{"empty policy domain", []byte(strings.Replace(base, "<domain>example.com</domain>", "<domain> . </domain>", 1)),
			Limits{}, ErrInvalid, []string{"no policy domain"}},
		{"no policy domain", []byte(strings.Replace(base, "<domain>example.com</domain>", "", 1)), Limits{},
			ErrInvalid, []string{"no policy domain"}},
		{"empty input", nil, Limits{}, ErrNotReport, []string{"empty input"}},
		{"whitespace only", []byte(" \n\t\r\n "), Limits{}, ErrNotReport, []string{"empty input"}},
		{"BOM only", []byte("\xef\xbb\xbf"), Limits{}, ErrNotReport, []string{"empty input"}},
		{"Yahoo's unused", []byte("unused"), Limits{}, ErrNotReport, []string{`not XML, input starts with "unused"`}},
		{"binary", []byte{0x50, 0x4b, 0x03, 0x04, 0xff, 0x00}, Limits{}, ErrNotReport, []string{"not XML"}},
		{"JSON", []byte(`{"organization-name": "x"}`), Limits{}, ErrNotReport, []string{"not XML"}},
		{"html root", []byte("<html><body><p>404</p></body></html>"), Limits{}, ErrNotReport,
			[]string{"expected <feedback>, found <html>"}},
		{"prefixed wrong root", []byte(`<?xml version="1.0"?><x:root xmlns:x="urn:x"/>`), Limits{}, ErrNotReport,
			[]string{"expected <feedback>, found <x:root>"}},
		{"wrapper around something else", []byte("<w><other/>" + body + "</w>"), Limits{}, ErrNotReport,
			[]string{"expected <feedback>, found <w>"}},
		{"only a comment", []byte("<!-- nothing -->\n"), Limits{}, ErrNotReport, []string{"no root element"}},
		{"text before the root", []byte("<!-- c -->text" + body), Limits{}, ErrNotReport, []string{"text outside the root"}},
		{"feedback never closed", []byte("<feedback>\n  "), Limits{}, ErrMalformed,
			[]string{"unexpected end of input inside <feedback>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := ParseBytes(tc.doc, tc.lim)
			if rep != nil {
				t.Errorf("got a report along with the error: %+v", rep)
			}
			wantErr(t, err, tc.sentinel, tc.msg...)
			_, err = Parse(&smallReads{r: bytes.NewReader(tc.doc)}, tc.lim)
			wantErr(t, err, tc.sentinel, tc.msg...)
		})
	}
}

// TestXXENoFetch points an external parameter entity at a local listener: nothing may connect.
func TestXXENoFetch(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback listener: %v", err)
	}
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	url := "http://" + ln.Addr().String() + "/evil.dtd"
	for _, doc := range []string{
		`<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY % ext SYSTEM "` + url + `"> %ext;]><feedback/>`,
		`<?xml version="1.0"?><!DOCTYPE feedback SYSTEM "` + url + `"><feedback/>`,
		`<?xml version="1.0"?><feedback><report_metadata><org_name>&ext;</org_name></report_metadata></feedback>`,
	} {
		_, err := ParseBytes([]byte(doc), Limits{})
		wantErr(t, err, ErrMalformed)
	}
	time.Sleep(50 * time.Millisecond) // a fetch, had one been started, would have connected by now
	ln.Close()
	if n := conns.Load(); n != 0 {
		t.Errorf("listener got %d connections, want 0", n)
	}
}

// TestBadRecordsSkipped: bad records are skipped with a warning and the rest is kept.
func TestBadRecordsSkipped(t *testing.T) {
	t.Parallel()
	good := record("192.0.2.100", "2")
	tests := []struct {
		name     string
		records  []string
		warning  string
		total    int64
		maxCount int64 // 0: the default
	}{
		{"count -1", []string{record("192.0.2.1", "-1")}, `count "-1" is negative or beyond int64`, 2, 0},
		{"count abc", []string{record("192.0.2.1", "abc")}, `count "abc" is not a number`, 2, 0},
		{"count 1.5", []string{record("192.0.2.1", "1.5")}, `count "1.5" is not a number`, 2, 0},
		{"count past 2^63", []string{record("192.0.2.1", "99999999999999999999")},
			`count "99999999999999999999" is negative or beyond int64`, 2, 0},
		{"count empty", []string{record("192.0.2.1", " ")}, "no count", 2, 0},
		{"count missing", []string{strings.Replace(record("192.0.2.1", "1"), "<count>1</count>", "", 1)}, "no count", 2, 0},
		{"count over the limit", []string{record("192.0.2.1", "1000000001")},
			"count 1000000001 is over the limit of 1000000000 messages per record (VIGIL_MAX_RECORD_COUNT)", 2, 0},
		{"sum overflow", []string{record("192.0.2.1", "9223372036854775800"), record("192.0.2.2", "9")},
			"count 9 would overflow the report's message total", 9223372036854775800 + 2, math.MaxInt64},
		{"leading-zero IPv4", []string{record("01.2.3.4", "1")}, `invalid source_ip "01.2.3.4"`, 2, 0},
		{"CIDR", []string{record("192.0.2.0/24", "1")}, `invalid source_ip "192.0.2.0/24"`, 2, 0},
		{"zone", []string{record("fe80::1%eth0", "1")}, `invalid source_ip "fe80::1%eth0": address has a zone`, 2, 0},
		{"bad-ip", []string{record("bad-ip", "1")}, `invalid source_ip "bad-ip"`, 2, 0},
		{"no source IP", []string{record("", "3")}, "no source_ip", 2, 0},
		{"no source IP, count 0 (o2.pl)", []string{record("", "0")}, "no source IP and zero count", 2, 0},
		{"self-closed source_ip, count 0", []string{strings.Replace(record("", "0"), "<source_ip></source_ip>",
			"<source_ip/>", 1)}, "no source IP and zero count", 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recs := append(append([]string{}, tc.records...), good)
			rep, err := ParseBytes([]byte(report(recs...)), Limits{MaxCount: tc.maxCount})
			if err != nil {
				t.Fatal(err)
			}
			if !hasWarning(rep, tc.warning) || !hasWarning(rep, "skipped") {
				t.Errorf("warnings %q lack %q", rep.Warnings, tc.warning)
			}
			if rep.MessageCount() != tc.total {
				t.Errorf("MessageCount %d, want %d", rep.MessageCount(), tc.total)
			}
			last := rep.Records[len(rep.Records)-1]
			if last.SourceIP.String() != "192.0.2.100" || last.Count != 2 {
				t.Errorf("good record lost: %+v", rep.Records)
			}
		})
	}
}

func TestNearFutureAccepted(t *testing.T) {
	t.Parallel()
	soon := time.Now().Add(time.Hour).Unix()
	doc := strings.Replace(report(), "<end>1704153599", "<end>"+strconv.FormatInt(soon, 10), 1)
	rep := mustParse(t, doc)
	if rep.DateEnd.Unix() != soon {
		t.Errorf("end %v, want %v", rep.DateEnd.Unix(), soon)
	}
	// With a smaller allowance the same report is out of range.
	_, err := ParseBytes([]byte(doc), Limits{MaxFutureSkew: time.Minute})
	wantErr(t, err, ErrInvalid, "timestamp out of range", "1m0s")
}

func TestWarningsCapped(t *testing.T) {
	t.Parallel()
	var recs []string
	for i := range 250 {
		recs = append(recs, record(fmt.Sprintf("bad-%d", i), "1"))
	}
	rep := mustParse(t, report(recs...))
	if len(rep.Warnings) != maxWarnings+1 || !strings.Contains(rep.Warnings[maxWarnings], "150 more warnings") {
		t.Errorf("%d warnings, last %q", len(rep.Warnings), rep.Warnings[len(rep.Warnings)-1])
	}
}

// TestHugeTokensFlatMemory feeds 64 MiB tokens from a generator, never a byte slice, and
// watches the heap while the parser reads. It does not run in parallel, so the heap it
// measures is its own.
func TestHugeTokensFlatMemory(t *testing.T) {
	const size = 64 << 20
	unit := strings.Repeat("a", 64<<10)
	head := `<?xml version="1.0"?><feedback><report_metadata>`
	tests := []struct{ name, prefix, unit, suffix string }{
		{"text node", head + "<org_name>", unit, "</org_name></report_metadata></feedback>"},
		{"attribute", head + `<org_name x="`, unit, `"/></report_metadata></feedback>`},
		{"comment", head + "<!--", unit, "--></report_metadata></feedback>"},
		{"CDATA", head + "<org_name><![CDATA[", unit, "]]></org_name></report_metadata></feedback>"},
		{"whitespace between tags", head, strings.Repeat(" ", len(unit)), "</report_metadata></feedback>"},
		{"DOCTYPE", `<!DOCTYPE feedback [<!ENTITY x "`, unit, `">]><feedback/>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeapPeak()
			var units int
			g := &genReader{prefix: tc.prefix, unit: tc.unit, suffix: tc.suffix, n: size / int64(len(tc.unit)),
				onRead: func() {
					if units++; units%16 == 0 {
						h.sample()
					}
				}}
			_, err := Parse(g, Limits{})
			h.sample()
			wantErr(t, err, ErrMalformed)
			if !strings.Contains(err.Error(), "exceeds 1048576 bytes") && !strings.Contains(err.Error(), "DOCTYPE") {
				t.Errorf("error %q names neither the token cap nor the DOCTYPE", err)
			}
			if read := int64(units) * int64(len(tc.unit)); read > 4<<20 {
				t.Errorf("read %d MiB before failing, want it to stop near the 1 MiB cap", read>>20)
			}
			if g := h.growthMiB(); g > 16 {
				t.Errorf("heap grew %.1f MiB while reading a 64 MiB token, want < 16", g)
			}
			t.Logf("%v; heap growth %.1f MiB", err, h.growthMiB())
		})
	}
}
