package unwrap

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
)

// got is one part as a test sees it, body read whole.
type got struct {
	Path, Name string
	Format     Format
	Body       []byte
}

func (g got) String() string {
	return fmt.Sprintf("%s %q (%q, %d bytes)", g.Format, g.Path, g.Name, len(g.Body))
}

// walkAll runs Walk and collects every part, reading each body to its end.
func walkAll(data []byte, lim Limits) ([]got, error) {
	var parts []got
	err := Walk(data, lim, func(p Part) error {
		b, err := io.ReadAll(p.Body)
		parts = append(parts, got{p.Path, p.Name, p.Format, b})
		return err
	})
	return parts, err
}

func formats(parts []got) []Format {
	out := make([]Format, len(parts))
	for i, p := range parts {
		out[i] = p.Format
	}
	return out
}

const tinyReport = `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>example.net</org_name><report_id>%s</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>
</feedback>
`

func report(id string) []byte { return fmt.Appendf(nil, tinyReport, id) }

func gz(t testing.TB, name string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Name = name
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipEntry describes one entry for zipOf; a nil header means a plain deflated file.
type zipEntry struct {
	name string
	body []byte
	edit func(*zip.FileHeader)
}

func zipOf(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.edit != nil {
			e.edit(h)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// b64 encodes like a mail client: 76-character lines ending in CRLF.
func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// mailPart is one MIME part for mailOf.
type mailPart struct {
	header string // header lines, CRLF-terminated
	body   string
}

// mailOf builds a multipart/mixed message; with one part and no boundary needed, use
// singleMail instead.
func mailOf(subject string, parts ...mailPart) []byte {
	// Like mail clients, a boundary of its own per message, so that a forwarded message keeps
	// its own; derived from the content so that the same message is always the same bytes.
	h := crc32.NewIEEE()
	for _, p := range parts {
		h.Write([]byte(p.header + p.body))
	}
	bd := fmt.Sprintf("b0undary-%08x", h.Sum32())
	var b strings.Builder
	b.WriteString("From: reports@example.net\r\nTo: dmarc@example.com\r\nSubject: " + subject + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + bd + "\"\r\n\r\n")
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		b.WriteString("--" + bd + "\r\n" + p.header + "\r\n" + p.body + "\r\n")
	}
	b.WriteString("--" + bd + "--\r\n")
	return []byte(b.String())
}

func singleMail(header, body string) []byte {
	return []byte("From: reports@example.net\r\nTo: dmarc@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\n" + header + "\r\n" + body)
}
