package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// corpusReports finds every TLS report in each smtp_tls file of the shared corpus, through
// pkg/unwrap as the pipeline does (MIME, gzip), and returns them with their index row.
func corpusReports(tb testing.TB) []corpusReport {
	tb.Helper()
	dir, entries := corpus.ForTest(tb)
	var out []corpusReport
	for _, e := range entries {
		if e.Kind != "smtp_tls" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			tb.Fatal(err)
		}
		var found [][]byte
		err = unwrap.Walk(data, unwrap.Limits{}, func(p unwrap.Part) error {
			if p.Format != unwrap.FormatTLSRPT {
				return fmt.Errorf("part %s is %s, not smtp_tls", p.Path, p.Format)
			}
			b, err := io.ReadAll(p.Body)
			found = append(found, b)
			return err
		})
		if err != nil {
			tb.Fatalf("%s: %v", e.RelPath(), err)
		}
		if len(found) != 1 {
			tb.Fatalf("%s: %d TLS reports found, want 1", e.RelPath(), len(found))
		}
		out = append(out, corpusReport{e: e, raw: data, json: found[0]})
	}
	if len(out) == 0 {
		tb.Fatal("the corpus index lists no smtp_tls file")
	}
	return out
}

type corpusReport struct {
	e    corpus.Entry
	raw  []byte // the file as stored
	json []byte // the report inside
}

// indexTime reads a date of INDEX.tsv, which keeps them as the report wrote them.
func indexTime(tb testing.TB, s string) time.Time {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	tb.Fatalf("index date %q unreadable", s)
	return time.Time{}
}

// TestCorpus reads every SMTP TLS report of the shared corpus and checks the fields the index
// records for it: reporter, report id, period, number of policies and policy domains.
func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range corpusReports(t) {
		t.Run(c.e.RelPath(), func(t *testing.T) {
			t.Parallel()
			r, err := Parse(c.json, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if r.OrganizationName != c.e.ReporterOrg {
				t.Errorf("organization_name %q, index says %q", r.OrganizationName, c.e.ReporterOrg)
			}
			if r.ReportID != c.e.ReportID {
				t.Errorf("report_id %q, index says %q", r.ReportID, c.e.ReportID)
			}
			if b := indexTime(t, c.e.DateBegin); !r.DateBegin.Equal(b) {
				t.Errorf("date_begin %v, index says %v", r.DateBegin, b)
			}
			if e := indexTime(t, c.e.DateEnd); !r.DateEnd.Equal(e) {
				t.Errorf("date_end %v, index says %v", r.DateEnd, e)
			}
			if len(c.e.Records) != 1 || len(r.Policies) != c.e.Records[0] {
				t.Errorf("%d policies, index says %v", len(r.Policies), c.e.Records)
			}
			var want []string
			for _, d := range strings.Split(c.e.PolicyDomain, ",") {
				if d = domainName(d); !slices.Contains(want, d) {
					want = append(want, d)
				}
			}
			got := r.Domains()
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("policy domains %q, index says %q", got, want)
			}
		})
	}
}

// TestRFC8460Example pins every field of the RFC's own example (§4.4 / Appendix B).
func TestRFC8460Example(t *testing.T) {
	t.Parallel()
	dir, _ := corpus.ForTest(t)
	b, err := os.ReadFile(filepath.Join(dir, "parsedmarc/samples/smtp_tls/rfc8460.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{
		OrganizationName: "Company-X", ContactInfo: "sts-reporting@company-x.example",
		ReportID:  "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
		DateBegin: time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC), DateEnd: time.Date(2016, 4, 1, 23, 59, 59, 0, time.UTC),
		Policies: []Policy{{
			PolicyType:   "sts",
			PolicyString: []string{"version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"},
			PolicyDomain: "company-y.example", MXHosts: []string{"*.mail.company-y.example"},
			SuccessfulSessions: 5326, FailedSessions: 303,
			FailureDetails: []FailureDetail{
				{ResultType: "certificate-expired", SendingMTAIP: "2001:db8:abcd:12::1", ReceivingMXHostname: "mx1.mail.company-y.example", FailedSessionCount: 100},
				{ResultType: "starttls-not-supported", SendingMTAIP: "2001:db8:abcd:13::1", ReceivingMXHostname: "mx2.mail.company-y.example",
					ReceivingIP: "203.0.113.56", FailedSessionCount: 200,
					AdditionalInformation: "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"},
				{ResultType: "validation-failure", SendingMTAIP: "198.51.100.62", ReceivingIP: "203.0.113.58",
					ReceivingMXHostname: "mx-backup.mail.company-y.example", FailedSessionCount: 3, FailureReasonCode: "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"},
			},
		}},
	}
	if got, exp := fmt.Sprintf("%+v", *r), fmt.Sprintf("%+v", want); got != exp {
		t.Errorf("parsed\n%s\nwant\n%s", got, exp)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings on the RFC's example: %q", r.Warnings)
	}
}

// TestLenient: the quirks real reporters send are read, each with a warning.
func TestLenient(t *testing.T) {
	t.Parallel()
	dir, _ := corpus.ForTest(t)
	b, err := os.ReadFile(filepath.Join(dir, "DmarcAnalyzerApp/src/api.tests/Fixtures/sample-lenient-tls.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Policies[0]
	if p.PolicyType != "sts" || p.PolicyDomain != "acme.example" || p.SuccessfulSessions != 42 || p.FailedSessions != 7 ||
		!slices.Equal(p.PolicyString, []string{"version: STSv1"}) {
		t.Errorf("policy 0: %+v", p)
	}
	if d := p.FailureDetails; len(d) != 2 || d[0].ResultType != "quantum-handshake-flux" || d[0].FailedSessionCount != 5 ||
		d[1].ReceivingMXHostname != "mx1.acme.example" || d[1].FailedSessionCount != 0 {
		t.Errorf("failure details: %+v", d)
	}
	for _, w := range []string{"sent as a string", "not lower-case", "policy-string sent as one string", "not a result type", "failed-session-count missing", "policy-domain is missing"} {
		if !slices.ContainsFunc(r.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning about %q in %q", w, r.Warnings)
		}
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const minimal = `{"organization-name":"Org","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"report-id":"r1","policies":[%s]}`

func withPolicies(s string) []byte { return []byte(fmt.Sprintf(minimal, s)) }

// TestRefused: what cannot be understood, or is too big, is refused with a reason.
func TestRefused(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	many := withPolicies(strings.TrimSuffix(strings.Repeat(`{"policy":{"policy-type":"sts","policy-domain":"x.example"}},`, 1001), ","))
	details := withPolicies(`{"policy":{"policy-type":"sts","policy-domain":"x.example"},"failure-details":[` +
		strings.TrimSuffix(strings.Repeat(`{"result-type":"certificate-expired","failed-session-count":1},`, 10001), ",") + `]}`)
	cases := []struct {
		name, in string
		kind     error
		detail   string
	}{
		{"empty", "", ErrInvalid, "empty"},
		{"not JSON", "this is not json", ErrInvalid, "not valid JSON"},
		{"truncated", `{"organization-name":"x"`, ErrInvalid, "JSON"},
		{"trailing garbage", string(withPolicies("")) + "}{", ErrInvalid, "JSON"},
		{"two documents", string(withPolicies("")) + string(withPolicies("")), ErrInvalid, "JSON"},
		{"array root", "[1,2,3]", ErrInvalid, "want"},
		{"wrong type org", `{"organization-name":5}`, ErrInvalid, `field "organization-name"`},
		{"wrong type policies", `{"organization-name":"o","report-id":"r","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"},"policies":{}}`, ErrInvalid, `"policies"`},
		{"no report id", `{"organization-name":"o","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"},"policies":[]}`, ErrInvalid, "report-id is missing"},
		{"no org", `{"report-id":"r","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"},"policies":[]}`, ErrInvalid, "organization-name is missing"},
		{"no date range", `{"organization-name":"o","report-id":"r","policies":[]}`, ErrInvalid, "date-range is missing"},
		{"no policies", `{"organization-name":"o","report-id":"r","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"}}`, ErrInvalid, "policies is missing"},
		{"bad date", strings.Replace(string(withPolicies("")), "2024-01-01T00:00:00Z", "yesterday", 1), ErrInvalid, "RFC 3339"},
		{"end before begin", strings.Replace(string(withPolicies("")), "2024-01-01T23:59:59Z", "2023-01-01T00:00:00Z", 1), ErrInvalid, "before it starts"},
		{"year 1970", strings.Replace(string(withPolicies("")), "2024-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 1), ErrInvalid, "out of range"},
		{"negative count", string(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":-1,"total-failure-session-count":0}}`)), ErrInvalid, "negative"},
		{"fraction", string(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":1.5,"total-failure-session-count":0}}`)), ErrInvalid, "whole number"},
		{"huge count", string(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":99999999999999999999,"total-failure-session-count":0}}`)), ErrInvalid, "whole number"},
		{"sum overflow", string(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":9007199254740992}},{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":1}}`)), ErrInvalid, "add up"},
		{"string count", string(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":"many"}}`)), ErrInvalid, "whole number"},
		{"no policy type", string(withPolicies(`{"policy":{"policy-domain":"x.example"}}`)), ErrInvalid, "policy-type is missing"},
		{"no policy object", string(withPolicies(`{"summary":{}}`)), ErrInvalid, "policy is missing"},
		{"deep nesting", deep, ErrLimit, "nested deeper"},
		{"too many policies", string(many), ErrLimit, "more than 1000 policies"},
		{"too many details", string(details), ErrLimit, "more than 10000 failure details"},
		{"huge string", string(withPolicies(`{"policy":{"policy-type":"sts","policy-domain":"` + strings.Repeat("a", 9000) + `"}}`)), ErrLimit, "longer than"},
		{"too large", `{"organization-name":"` + strings.Repeat("a", 1<<20) + `"}`, ErrLimit, "larger than"},
	}
	lim := Limits{MaxBytes: 1 << 20}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Read(strings.NewReader(c.in), lim)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("error %v, want %v naming %q", err, c.kind, c.detail)
			}
		})
	}
}

// TestHostileStrings: script, markup, control characters and NUL are kept as text (the API
// answers JSON, which escapes them) but never a NUL, which PostgreSQL refuses in text.
func TestHostileStrings(t *testing.T) {
	t.Parallel()
	in := `{"organization-name":"<script>alert(1)</script>","contact-info":"x\u0000y\u0007","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"},"report-id":"\"><img src=x onerror=alert(1)>","policies":[{"policy":{"policy-type":"sts","policy-domain":"ex\u0000ample.com"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}`
	r, err := Parse([]byte(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OrganizationName != "<script>alert(1)</script>" || r.ReportID != `"><img src=x onerror=alert(1)>` {
		t.Errorf("text changed: %q %q", r.OrganizationName, r.ReportID)
	}
	if r.ContactInfo != "xy" || r.Policies[0].PolicyDomain != "example.com" {
		t.Errorf("control characters kept: %q %q", r.ContactInfo, r.Policies[0].PolicyDomain)
	}
}

// TestGzipBomb: a bomb behind application/tlsrpt+gzip stops at the decompressed cap of Read.
func TestGzipBomb(t *testing.T) {
	t.Parallel()
	bomb := gz(bytes.Repeat([]byte(" "), 64<<20))
	zr, err := gzip.NewReader(bytes.NewReader(bomb))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Read(zr, Limits{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("error %v, want ErrLimit", err)
	}
}
