package failure

import (
	"strings"
	"testing"
)

// FuzzParse: no message makes the parser panic, and with redaction on nothing it keeps holds
// an address local part (make fuzz).
func FuzzParse(f *testing.F) {
	f.Add([]byte("From: <r@reporter.example>\nContent-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/feedback-report\n\n" +
		"Feedback-Type: auth-failure\nSource-IP: 192.0.2.1\nReported-Domain: example.com\nOriginal-Mail-From: jane@example.com\n--b\n" +
		"Content-Type: text/rfc822-headers\n\nFrom: Jane <jane@example.com>\nTo: bob@example.org\n--b--\n"))
	f.Add([]byte("Subject: DMARC Forensic Report\n\n  Sender Domain: example.com\n  Sender IP Address: 203.0.113.68\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b, Options{Redact: true})
		if err != nil {
			return
		}
		check := func(s string) {
			if strings.Contains(RedactAddresses(s), "@") && RedactAddresses(s) != s {
				t.Fatalf("unredacted address in %q", s)
			}
		}
		check(r.OriginalMailFrom)
		check(r.Subject)
		for _, h := range r.SampleHeaders {
			check(h.Value)
		}
		if r.SampleBody != nil {
			t.Fatal("a body kept with redaction on")
		}
	})
}
