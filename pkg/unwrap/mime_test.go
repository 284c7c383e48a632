package unwrap

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	textPart = "Content-Type: text/plain; charset=us-ascii\r\n"
	gzipB64  = "Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n"
)

// forward wraps a message the way a mail client forwards it as an attachment.
func forward(msg []byte) []byte {
	return mailOf("Fwd: report", mailPart{textPart, "See the attached report."},
		mailPart{"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n", string(msg)})
}

func forwardN(msg []byte, n int) []byte {
	for range n {
		msg = forward(msg)
	}
	return msg
}

func TestMIME(t *testing.T) {
	t.Parallel()
	rgz := gz(t, "", report("r1"))
	tls := `{"organization-name":"Example","date-range":{},"contact-info":"x","report-id":"1","policies":[]}`
	arf := func(feedbackType string) []byte {
		return []byte("From: ruf@example.net\r\nSubject: Report\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/report; report-type=feedback-report; boundary=\"arf\"\r\n\r\n" +
			"--arf\r\nContent-Type: text/plain\r\n\r\nA message failed.\r\n" +
			"--arf\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: " + feedbackType + "\r\nVersion: 1\r\n\r\n" +
			"--arf\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: someone@example.com\r\nSubject: hi\r\n\r\n--arf--\r\n")
	}
	tests := []struct {
		name    string
		input   []byte
		err     error
		errText string
		formats []Format
		names   []string
		paths   []string
	}{
		{name: "inline text/xml, no filename",
			input:   mailOf("Report", mailPart{textPart, "Hello"}, mailPart{"Content-Type: text/xml\r\nContent-Disposition: inline\r\n", string(report("i"))}),
			formats: []Format{FormatDMARC}, names: []string{""}, paths: []string{"message/part 2"}},
		{name: "single-part application/zip message",
			input:   singleMail("Content-Type: application/zip; name=\"r.zip\"\r\nContent-Transfer-Encoding: base64\r\n", b64(zipOf(t, zipEntry{"r.xml", report("z"), nil}))),
			formats: []Format{FormatDMARC}, paths: []string{"message/body (r.zip)/r.xml"}},
		{name: "octet-stream named .xml.gz",
			input:   mailOf("Report", mailPart{"Content-Type: application/octet-stream; name=\"report.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n", b64(rgz)}),
			formats: []Format{FormatDMARC}, names: []string{"report.xml.gz"}},
		{name: "Mimecast: zip labelled application/gzip",
			input:   mailOf("Report", mailPart{gzipB64 + "Content-Disposition: attachment; filename=\"r.xml.gz\"\r\n", b64(zipOf(t, zipEntry{"r.xml", report("m"), nil}))}),
			formats: []Format{FormatDMARC}, names: []string{"r.xml"}},
		{name: "forwarded message/rfc822",
			input:   forward(mailOf("Report", mailPart{gzipB64 + "Content-Disposition: attachment; filename=\"r.xml.gz\"\r\n", b64(rgz)})),
			formats: []Format{FormatDMARC}, paths: []string{"message/part 2/message/part 1 (r.xml.gz)/gzip"}},
		{name: "forwarded three times",
			input:   forwardN(singleMail(gzipB64, b64(rgz)), 3),
			formats: []Format{FormatDMARC}},
		{name: "forwarded five times", input: forwardN(singleMail(gzipB64, b64(rgz)), 5),
			err: ErrLimit, errText: "message/part 2/message/part 2/message/part 2/message/part 2: limit exceeded: e-mail nested deeper than 3 messages"},
		{name: "base64 with spaces inside lines",
			input:   singleMail(gzipB64, strings.ReplaceAll(b64(rgz), "A", " A")),
			formats: []Format{FormatDMARC}},
		{name: "base64 without line breaks, LF endings",
			input:   []byte(strings.ReplaceAll(string(singleMail(gzipB64, base64.StdEncoding.EncodeToString(rgz))), "\r\n", "\n")),
			formats: []Format{FormatDMARC}},
		{name: "quoted-printable XML",
			input:   singleMail("Content-Type: application/xml\r\nContent-Transfer-Encoding: quoted-printable\r\n", strings.ReplaceAll(string(report("q")), "<feedback>", "<feed=\r\nback>")),
			formats: []Format{FormatDMARC}},
		{name: "RFC 2231 filename",
			input: mailOf("Report", mailPart{gzipB64 + "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9port.xml.gz\r\n", b64(rgz)}),
			names: []string{"réport.xml.gz"}, formats: []Format{FormatDMARC}},
		{name: "RFC 2231 continued filename",
			input: mailOf("Report", mailPart{gzipB64 + "Content-Disposition: inline;\r\n filename*0=long!name.xm;\r\n filename*1=l.gz\r\n", b64(rgz)}),
			names: []string{"long!name.xml.gz"}, formats: []Format{FormatDMARC}},
		{name: "RFC 2047 name",
			input: mailOf("Report", mailPart{"Content-Type: application/gzip; name=\"=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("rapport-é.xml.gz")) + "?=\"\r\nContent-Transfer-Encoding: base64\r\n", b64(rgz)}),
			names: []string{"rapport-é.xml.gz"}, formats: []Format{FormatDMARC}},
		{name: "duplicate filename parameters",
			input: mailOf("Report", mailPart{gzipB64 + "Content-Disposition: attachment; filename=\"a;1.xml.gz\"; filename=\"b.xml.gz\"\r\n", b64(rgz)}),
			names: []string{"a;1.xml.gz"}, formats: []Format{FormatDMARC}},
		{name: "two reports in one mail",
			input: mailOf("Reports", mailPart{textPart, "Two reports."},
				mailPart{gzipB64 + "Content-Disposition: attachment; filename=\"a.xml.gz\"\r\n", b64(rgz)},
				mailPart{"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n", b64(zipOf(t, zipEntry{"b.xml", report("b"), nil}))}),
			formats: []Format{FormatDMARC, FormatDMARC}, names: []string{"a.xml.gz", "b.xml"}},
		{name: "TLS-RPT gzip attachment",
			input:   mailOf("Report", mailPart{"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n", b64(gz(t, "r.json", []byte(tls)))}),
			formats: []Format{FormatTLSRPT}},
		{name: "spam with only text and HTML",
			input: mailOf("Cheap pills", mailPart{textPart, "Buy now"}, mailPart{"Content-Type: text/html\r\n", "<html><body>Buy now</body></html>"},
				mailPart{"Content-Type: text/plain\r\n", "Received: looks like a header\r\n\r\n"}),
			err: ErrNoReport, errText: "e-mail has no attachment or inline part holding a report"},
		{name: "header only", input: []byte("From: a@example.com\r\nSubject: hi\r\n"), err: ErrNoReport},
		{name: "mbox From line", input: append([]byte("From reports@example.net Tue Apr 30 02:09:16 2019\n"), singleMail(gzipB64, b64(rgz))...),
			formats: []Format{FormatDMARC}},
		{name: "no closing delimiter",
			input:   noClose(mailOf("Report", mailPart{gzipB64, b64(rgz)})),
			formats: []Format{FormatDMARC}},
		{name: "ARF auth-failure", input: arf("auth-failure"), formats: []Format{FormatFailure}, paths: []string{"message"}},
		{name: "ARF abuse", input: arf("abuse"), err: ErrNoReport, errText: `Feedback-Type "abuse" is not a DMARC failure report`},
		{name: "forwarded ARF", input: forward(arf("auth-failure")), formats: []Format{FormatFailure}, paths: []string{"message/part 2/message"}},
		{name: "corrupt base64", input: mailOf("Report", mailPart{gzipB64 + "Content-Disposition: attachment; filename=\"r.xml.gz\"\r\n", "H4sI!!!!\r\n"}),
			err: ErrCorrupt, errText: "message/part 1 (r.xml.gz): corrupt container: base64: illegal base64 data"},
		{name: "corrupt entry names its path",
			input: mailOf("Report", mailPart{"Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"r.zip\"\r\nContent-Transfer-Encoding: base64\r\n",
				b64(zipOf(t, zipEntry{"bad.xml.gz", gz(t, "", report("x"))[:40], nil}))}),
			err: ErrCorrupt, errText: "message/part 1 (r.zip)/bad.xml.gz/gzip: corrupt container"},
		{name: "e-mail inside gzip", input: gz(t, "r.eml", singleMail(gzipB64, b64(rgz))), formats: []Format{FormatDMARC},
			paths: []string{"r.eml/message/body/gzip"}},
		{name: "multipart without its boundary", input: singleMail("Content-Type: multipart/mixed; boundary=\"nope\"\r\n", "just text\r\n"),
			err: ErrCorrupt, errText: `no delimiter line for boundary "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parts, err := walkAll(tc.input, DefaultLimits)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.errText) {
					t.Fatalf("error %q; want one wrapping %q and containing %q", err, tc.err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Walk: %v (parts %v)", err, parts)
			}
			var names, paths []string
			for _, p := range parts {
				names, paths = append(names, p.Name), append(paths, p.Path)
			}
			if !slices.Equal(formats(parts), tc.formats) {
				t.Errorf("formats %v, want %v (parts %v)", formats(parts), tc.formats, parts)
			}
			if tc.names != nil && !slices.Equal(names, tc.names) {
				t.Errorf("names %q, want %q", names, tc.names)
			}
			if tc.paths != nil && !slices.Equal(paths, tc.paths) {
				t.Errorf("paths %q, want %q", paths, tc.paths)
			}
		})
	}
}

// noClose drops the close delimiter, the last line of a mailOf message.
func noClose(msg []byte) []byte {
	s := strings.TrimSuffix(string(msg), "\r\n")
	return []byte(s[:strings.LastIndex(s, "\r\n")+2])
}

// TestMIMELimits checks the per-message limits on parts and multipart nesting.
func TestMIMELimits(t *testing.T) {
	t.Parallel()
	var many []mailPart
	for range 12 {
		many = append(many, mailPart{textPart, "x"})
	}
	deep := "Content-Type: text/xml\r\n\r\n" + string(report("d"))
	for i := range 7 {
		b := fmt.Sprintf("b%d", i)
		deep = "Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n" + deep + "\r\n--" + b + "--\r\n"
	}
	tests := []struct {
		name  string
		input []byte
		text  string
	}{
		{"more parts than MaxEntries", mailOf("Many", many...), "message: limit exceeded: e-mail has more than 10 MIME parts"},
		{"multipart nested deeper than MaxDepth", []byte("From: a@example.com\r\nMIME-Version: 1.0\r\n" + deep), "multipart nesting deeper than 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := walkAll(tc.input, Limits{MaxEntries: 10})
			if !errors.Is(err, ErrLimit) || !strings.Contains(fmt.Sprint(err), tc.text) {
				t.Errorf("error %q; want a limit error containing %q", err, tc.text)
			}
		})
	}
}
