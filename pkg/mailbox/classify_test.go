package mailbox

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/unwrap"
)

// TestClassifyCorpus: every corpus e-mail holding a report of a recognised kind (aggregate,
// failure, TLS-RPT) goes to the archive; the others to the invalid folder, with a reason.
func TestClassifyCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range corpusMails(t) {
		t.Run(c.rel, func(t *testing.T) {
			t.Parallel()
			ok, reason := Classify(c.data, unwrap.DefaultLimits)
			if ok == c.expectInvalid() {
				t.Errorf("kind %s: hasReport %v (%s)", c.kind, ok, reason)
			}
			want := map[string]string{"aggregate": "DMARC aggregate report", "forensic": "DMARC failure report",
				"smtp_tls": "SMTP TLS report", "other": "no report"}[c.kind]
			if !strings.Contains(reason, want) {
				t.Errorf("kind %s: reason %q, want it to say %q", c.kind, reason, want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	wrapped := "<?xml version=\"1.0\"?>\n<xs:schema>" + strings.Repeat("<!-- padding -->\n", 2000) +
		"<feedback><report_metadata/></feedback>"
	prefixed := "<?xml version=\"1.0\"?>\n<wrapper>" + strings.Repeat(" ", 20<<10) + "<rua:feedback xmlns:rua=\"urn:ietf:params:xml:ns:dmarc-2.0\"/></wrapper>"
	cases := []struct {
		name   string
		data   string
		ok     bool
		reason string
	}{
		{"aggregate", string(reportMail(1, 0)), true, "1 DMARC aggregate report"},
		{"spam", string(spamMail(1)), false, "no report"},
		{"empty", "", false, "empty"},
		{"html", "<html><body>hi</body></html>", false, "XML that is not a DMARC report"},
		{"feedback past the sniffed 16 KiB", wrapped, true, "possible DMARC aggregate report"},
		{"prefixed feedback far in", prefixed, true, "possible DMARC aggregate report"},
		{"feedback-like word", "<?xml version=\"1.0\"?><x><feedbacks/>feedback</x>", false, "no report"},
		{"bounce", "From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n", false, "no report"},
	}
	for _, tc := range cases {
		ok, reason := Classify([]byte(tc.data), unwrap.DefaultLimits)
		if ok != tc.ok || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: %v %q; want %v mentioning %q", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}
