package failure

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// want is what each failure report of the corpus says, read by hand from the files.
type want struct {
	format, domain, ip, arrival, authFailure, reportedBy, delivery, dkim, spf, disposition string
}

var corpusWant = map[string]want{
	"parsedmarc/samples/failure/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": {
		"arf", "domain.de", "10.10.10.10", "2018-10-01T09:20:27Z", "dmarc", "domain.de", "smg-policy-action", "", "", "none"},
	"parsedmarc/samples/failure/[Netease DMARC Failure Report] Rent Reminder.eml": {
		"arf", "cardinal.com", "167.89.69.24", "2018-09-28T08:48:42Z", "dmarc", "163.com", "delivered", "pass", "pass", ""},
	"parsedmarc/samples/failure/dmarc_ruf_report_linkedin.crlf.eml": {
		"arf", "example.com", "10.10.10.10", "2019-04-30T02:09:00Z", "dmarc", "linkedin.com", "delivered", "", "", "none"},
	"parsedmarc/samples/failure/dmarc_ruf_report_linkedin.eml": {
		"arf", "example.com", "10.10.10.10", "2019-04-30T02:09:00Z", "dmarc", "linkedin.com", "delivered", "", "", "none"},
	"parsedmarc/samples/failure/exim_plain_text_only_no_arf_part.eml": {
		"text", "example.com", "203.0.113.68", "2025-04-07T21:16:09Z", "dmarc", "node01.mailgate.example.net", "", "", "", ""},
	"parsedmarc/samples/forensic/subject.eml": {
		"arf", "domain.de", "10.10.10.10", "2018-10-01T09:20:27Z", "dmarc", "domain.de", "smg-policy-action", "", "", "none"},
	"WoodySlum-dmarc-parser/example/rfc_6591_ARF_B1.eml": {
		"arf", "a.sender.example", "192.0.2.1", "2011-10-08T20:15:58Z", "bodyhash", "mail.receiver.example", "", "fail", "", ""},
	"set-of-emails/maildir/bsd/arf-19.eml": {
		"arf", "example.net", "203.0.113.2", "2015-04-29T14:34:45Z", "dkim", "126.example.com", "delivered", "fail", "pass", ""},
	"set-of-emails/maildir/bsd/arf-20.eml": {
		"arf", "example.net", "203.0.113.2", "", "dmarc", "example.net", "", "", "", ""},
}

type corpusFile struct {
	rel  string
	raw  []byte // the file
	part []byte // the failure report message pkg/unwrap hands out
}

func corpusFiles(t *testing.T) []corpusFile {
	t.Helper()
	dir, entries := corpus.ForTest(t)
	var out []corpusFile
	for _, e := range entries {
		if e.Kind != "forensic" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			t.Fatal(err)
		}
		var part []byte
		err = unwrap.Walk(raw, unwrap.Limits{}, func(p unwrap.Part) error {
			if p.Format != unwrap.FormatFailure {
				return errors.New("not classified as a failure report: " + string(p.Format))
			}
			part = make([]byte, 0)
			b := make([]byte, 32<<10)
			for {
				n, err := p.Body.Read(b)
				part = append(part, b[:n]...)
				if err != nil {
					return nil
				}
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", e.RelPath(), err)
		}
		out = append(out, corpusFile{rel: e.RelPath(), raw: raw, part: part})
	}
	if len(out) != len(corpusWant) {
		t.Fatalf("the index lists %d forensic files, this test knows %d: read the new ones and add them", len(out), len(corpusWant))
	}
	return out
}

// TestCorpus reads every failure report of the shared corpus with exact fields.
func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, f := range corpusFiles(t) {
		t.Run(f.rel, func(t *testing.T) {
			t.Parallel()
			w, ok := corpusWant[f.rel]
			if !ok {
				t.Fatal("no expected fields for this file")
			}
			r, err := Parse(f.part, Options{Redact: true})
			if err != nil {
				t.Fatal(err)
			}
			arrival := ""
			if r.ArrivalDate != nil {
				arrival = r.ArrivalDate.Format(time.RFC3339)
			}
			got := want{r.Format, r.Domain, r.SourceIP, arrival, r.AuthFailure, r.ReportedBy, r.DeliveryResult, r.DKIMResult, r.SPFResult, r.Disposition}
			if got != w {
				t.Errorf("read\n%+v\nwant\n%+v", got, w)
			}
			if len(r.SampleHeaders) == 0 {
				t.Error("no header of the original message kept")
			}
		})
	}
}

// localParts finds the local@ of every address in a file.
var localParts = regexp.MustCompile("[A-Za-z0-9!#$%&'+/=?^_`{|}~.-]*[A-Za-z0-9]@[A-Za-z0-9]")

// TestRedaction: with redaction on, no local part of any address in the file and no body is
// stored (checked on what the store holds, on both backends); with it off, both are kept.
func TestRedaction(t *testing.T) {
	t.Parallel()
	files := corpusFiles(t)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		for _, redact := range []bool{true, false} {
			st := b.Store(t)
			svc := New(Deps{Store: st, Redact: redact})
			in := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 50 << 20}, testenv.Logger())
			in.HandleKind(unwrap.FormatFailure, svc.HandlePart)
			ctx := context.Background()
			var fs []ingest.File
			for _, f := range files {
				fs = append(fs, ingest.File{Name: filepath.Base(f.rel), Source: "imap", Data: f.raw})
			}
			acc, err := in.AcceptBatch(ctx, fs)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range acc {
				out, err := in.ProcessBatch(ctx, []int64{a.IngestID})
				if err != nil || out[0].Status != store.StatusProcessed {
					t.Fatalf("%s: %+v %v", files[i].rel, out, err)
				}
				var rw row
				if err := st.DB().Where("ingest_id = ?", a.IngestID).Take(&rw).Error; err != nil {
					t.Fatal(err)
				}
				stored, _ := json.Marshal(rw)
				leaked := 0
				for _, m := range localParts.FindAllString(string(files[i].raw), -1) {
					local := strings.ToLower(m[:len(m)-1])
					if len(local) > 3 && strings.Contains(strings.ToLower(string(stored)), local) {
						leaked++
						if redact {
							t.Errorf("%s: %q stored with redaction on", files[i].rel, local)
						}
					}
				}
				if redact && (rw.SampleBody != nil || !rw.Redacted) {
					t.Errorf("%s: body %v stored with redaction on", files[i].rel, rw.SampleBody != nil)
				}
				if !redact && leaked == 0 && rw.OriginalMailFrom != "" {
					t.Errorf("%s: no address kept with redaction off", files[i].rel)
				}
				if !redact && strings.Contains(files[i].rel, "linkedin.eml") && (rw.SampleBody == nil || !strings.Contains(*rw.SampleBody, "quoted-printable") && len(*rw.SampleBody) < 10) {
					t.Errorf("%s: body not kept with redaction off", files[i].rel)
				}
			}
		}
	})
}

// TestRedactAddresses pins the replacement: the local part goes, the domain and any
// property name in front stay.
func TestRedactAddresses(t *testing.T) {
	t.Parallel()
	for in, out := range map[string]string{
		"jane.doe@example.com": "*@example.com",
		"<bounces+1137616-c1ad-xsj399=163.com@email.entrata.com>": "<*@email.entrata.com>",
		"spf=pass smtp.mailfrom=jane@example.com":                 "spf=pass smtp.mailfrom=*@example.com",
		"envelope-from=a.b@x.example; receiver=c@y.example":       "envelope-from=*@x.example; receiver=*@y.example",
		"Peter <peter@pan.example>, paul@x.example":               "Peter <*@pan.example>, *@x.example",
		"DKIM-Identity @sender.example":                           "DKIM-Identity @sender.example",
		"no address here":                                         "no address here",
	} {
		if got := RedactAddresses(in); got != out {
			t.Errorf("RedactAddresses(%q) = %q, want %q", in, got, out)
		}
	}
}

// TestRefused: what is no failure report is refused with a reason.
func TestRefused(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ in, reason string }{
		"no header":     {"\n\njust text", "no e-mail header"},
		"nothing named": {"Subject: DMARC failure report\n\nnothing here\n", "neither a reported domain nor a source IP"},
		"abuse ARF": {"Subject: x\nContent-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nSource-IP: 192.0.2.1\nReported-Domain: example.com\n--b--\n",
			"is not auth-failure"},
		"too large": {"Subject: x\n\n" + strings.Repeat("a", 11<<20), "larger than"},
	} {
		_, err := Parse([]byte(c.in), Options{Redact: true})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: error %v, want one naming %q", name, err, c.reason)
		}
	}
}

// TestHostileValues: markup stays text, control characters and NUL go, values are bounded.
func TestHostileValues(t *testing.T) {
	t.Parallel()
	msg := "From: <r@reporter.example>\nSubject: <script>alert(1)</script>\nContent-Type: multipart/report; boundary=b\n\n--b\n" +
		"Content-Type: message/feedback-report\n\nFeedback-Type: auth-failure\nSource-IP: 192.0.2.1\nReported-Domain: example.com\n" +
		"User-Agent: x\x00y\x07z\nOriginal-Envelope-Id: " + strings.Repeat("e", 20000) + "\n--b--\n"
	r, err := Parse([]byte(msg), Options{Redact: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "<script>alert(1)</script>" || r.UserAgent != "xyz" || len(r.OriginalEnvelopeID) > maxValueBytes+4 {
		t.Errorf("subject %q, user agent %q, envelope id %d bytes", r.Subject, r.UserAgent, len(r.OriginalEnvelopeID))
	}
}
