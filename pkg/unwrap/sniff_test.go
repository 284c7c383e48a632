package unwrap

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

func utf16LE(s string) []byte {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

func TestSniff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		kind   kind
		format Format
	}{
		{"gzip", "\x1f\x8b\x08\x00", kindGzip, ""},
		{"zip", "PK\x03\x04rest", kindZip, ""},
		{"empty zip", "PK\x05\x06", kindZip, ""},
		{"zlib best compression", "\x78\xda\x01", kindZlib, ""},
		{"text starting x^", "x^2 + y^2\n", kindPayload, FormatUnknown},
		{"feedback root", "<feedback><version>1.0</version>", kindPayload, FormatDMARC},
		{"prolog, comment, DOCTYPE with subset", "\xef\xbb\xbf\n<?xml version=\"1.0\"?><!-- <root> --><!DOCTYPE feedback [<!ENTITY x \"y\">]>\n<feedback>", kindPayload, FormatDMARC},
		{"namespaced root", `<dmarc:feedback xmlns:dmarc="urn:ietf:params:xml:ns:dmarc-2.0">`, kindPayload, FormatDMARC},
		{"stray xs:schema wrapper", `<?xml version="1.0"?><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><feedback>`, kindPayload, FormatDMARC},
		{"feedback only as text", "<root>no <feedbacks> here, feedback</root>", kindPayload, FormatXML},
		{"html", "<!DOCTYPE html><html><body>", kindPayload, FormatXML},
		{"UTF-16 DMARC", string(utf16LE("<?xml version=\"1.0\" encoding=\"UTF-16\"?><feedback>")), kindPayload, FormatDMARC},
		{"UTF-16 other XML", string(utf16LE("<root/>")), kindPayload, FormatXML},
		{"not a tag", "<3 you", kindPayload, FormatUnknown},
		{"TLS-RPT", "{\n \"organization-name\" : \"Google\",", kindPayload, FormatTLSRPT},
		{"TLS-RPT policies first", `{"policies": [], "report-id": "1"}`, kindPayload, FormatTLSRPT},
		{"other JSON", `[{"a": 1}]`, kindPayload, FormatJSON},
		{"bracketed text", "[This message was forwarded]", kindPayload, FormatUnknown},
		{"mail", "Received: from x\r\n by y\r\nFrom: a@b\r\n\r\nbody", kindMail, ""},
		{"mbox mail", "From a@b Tue Apr 30 02:09:16 2019\nX-Thing: 1\n\n", kindMail, ""},
		{"mail header over the window", "Content-Transfer-Encoding: binary\nContent-Type: multi", kindMail, ""},
		{"obsolete space before the colon", "Subject : hi\n\nbody", kindMail, ""},
		{"text with a colon", "Note: this is not mail\n\nreally", kindPayload, FormatUnknown},
		{"mbox-like prose", "From the desk of X\nDear reader\n", kindPayload, FormatUnknown},
		{"continuation first", " Received: x\n\n", kindPayload, FormatUnknown},
		{"plain text", "unused", kindPayload, FormatUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, f := sniff([]byte(tc.in))
			if k != tc.kind || f != tc.format {
				t.Errorf("sniff(%q) = %d, %q; want %d, %q", tc.in, k, f, tc.kind, tc.format)
			}
		})
	}
}

// TestZipEntryCount checks the end-of-central-directory reader, including a comment that holds
// a fake signature.
func TestZipEntryCount(t *testing.T) {
	t.Parallel()
	three := zipOf(t, zipEntry{"a", nil, nil}, zipEntry{"b", nil, nil}, zipEntry{"c", nil, nil})
	withComment := func(comment string) []byte {
		b := append([]byte{}, three...)
		binary.LittleEndian.PutUint16(b[len(b)-2:], uint16(len(comment)))
		return append(b, comment...)
	}
	tests := []struct {
		name string
		in   []byte
		want uint64
		ok   bool
	}{
		{"three entries", three, 3, true},
		{"comment holding a signature", withComment("PK\x05\x06\xff\xff\xff\xff\xff\xff\xff\xff"), 3, true},
		{"no record", []byte("PK\x03\x04 truncated"), 0, false},
		{"100k entries", manyEntries(t, 100_000), 100_000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if n, ok := zipEntryCount(tc.in); n != tc.want || ok != tc.ok {
				t.Errorf("zipEntryCount = %d, %v; want %d, %v", n, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMediaType(t *testing.T) {
	t.Parallel()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("<feedback/>"))
	zw.Close()
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"gzip", gz.Bytes(), "application/gzip"},
		{"zip", []byte("PK\x03\x04rest"), "application/zip"},
		{"dmarc xml", []byte("<?xml version=\"1.0\"?><feedback></feedback>"), "application/xml"},
		{"html is xml-ish, never html", []byte("<html><script>alert(1)</script></html>"), "application/xml"},
		{"mail", []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\r\nbody"), "message/rfc822"},
		{"json", []byte(`{"a": 1}`), "application/json"},
		{"random", []byte{0x00, 0x01, 0x02, 0x03}, "application/octet-stream"},
		{"empty", nil, "application/octet-stream"},
	}
	for _, c := range cases {
		if got := MediaType(c.in); got != c.want {
			t.Errorf("%s: MediaType = %q, want %q", c.name, got, c.want)
		}
	}
}
