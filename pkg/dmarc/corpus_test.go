package dmarc

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// corpusWant is what a corpus file must give when INDEX.tsv alone does not say it right.
type corpusWant struct {
	sentinel error    // nil: the file must parse
	msg      []string // fragments the error must contain
	records  int      // records kept, when parsing succeeds
	why      string
	// What the file says, for files the index has no metadata for (it could not parse them).
	domain, reportID string
	begin, end       string
}

// corpusOverrides record, for each file, why the expectation differs from what INDEX.tsv
// implies. Each was checked by reading the file.
var corpusOverrides = map[string]corpusWant{
	"parsedmarc/samples/aggregate/ikea.com!example.de!1538690400!1538776800.xml": {records: 1,
		why: "INDEX calls it truncated XML, but it is a complete <feedback> inside an unclosed " +
			"<xs:schema> wrapper, the reporter quirk DESIGN.md says must be read",
		domain: "example.de", reportID: "aggr_report_2018_10_05_5bc7e9b4f3e8a",
		begin: "1538690400", end: "1538776800"},
	"patrickkerrigan-dmarc-parser/src/test/resources/dmarc-1-space.xml": {records: 3,
		why: "INDEX (expat) calls a space before <?xml malformed; the publishing project's own " +
			"test expects the file to parse, and it is unambiguous",
		domain: "patrickkerrigan.uk", reportID: "123456", begin: "1491782400", end: "1491868799"},
	"communitales-dmarc-report-parser/tests/Fixtures/Report/report_no_source_ip.xml": {records: 0,
		why: "its one record is o2.pl's empty one (no source IP, count 0): skipped with a warning"},
	"dmarc-report-converter/pkg/dmarc/testdata/test_empty.xml": {records: 0,
		why: "its one record has no source IP and count 0: skipped with a warning"},
	"communitales-dmarc-report-parser/tests/Fixtures/Report/report_invalid_mindate.xml": {
		sentinel: ErrInvalid, msg: []string{"no date range"},
		why: "derived: <data_range> instead of <date_range>"},
	"v-dmarc-dashboard/unit/fixtures/dmarc/forensic-sample.xml": {
		sentinel: ErrInvalid, msg: []string{"no date range"},
		why: "a failure report's fields poured into <feedback>: no date range"},
	"go-dmarc-analyzer/testdata/malformed3.xml": {
		sentinel: ErrMalformed, msg: []string{"line 14", "unexpected EOF"},
		why: "truncated; expat names line 13 where the cut tag starts, Go the end of input on " +
			"line 14 after the final newline"},
	"trollByte-dmarc/backend/tests/fixtures/malformed.xml": {
		sentinel: ErrMalformed, msg: []string{"unexpected end of input inside <feedback>", "line 7"}},
	"dmarc_report_reader/tests/fixtures/malformed.xml": {
		sentinel: ErrMalformed, msg: []string{"<report_metadata> closed by </feedback>", "line 9"}},
	"parsedmarc/samples/aggregate/invalid_utf_8.xml": {
		sentinel: ErrMalformed, msg: []string{"invalid UTF-8", "line 31"}},
	"parsedmarc/samples/aggregate/invalid_xml.xml": {
		sentinel: ErrMalformed, msg: []string{"line 5", "expected attribute name"},
		why: "the e-mail is written <bad-xml@bad-xml.net> unescaped"},
}

// corpusMessageTotals are sums of <count>, taken by reading each file (grep of its <count>
// elements, gunzip first for .gz), not by the code under test.
var corpusMessageTotals = map[string]int64{
	"parsedmarc/samples/aggregate/!example.com!1538204542!1538463818.xml":                             1,
	"parsedmarc/samples/aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml":             1,
	"parsedmarc/samples/aggregate/example.net!example.com!1529366400!1529452799.xml":                  1,
	"parsedmarc/samples/aggregate/ikea.com!example.de!1538690400!1538776800.xml":                      1,
	"parsedmarc/samples/aggregate/usssa.com!example.com!1538784000!1538870399.xml":                    2,
	"parsedmarc/samples/aggregate/zoho.com!example.com!1581753600!1581840000.xml":                     9,
	"parsedmarc/samples/aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz":    1,
	"parsedmarc/samples/extract_report/nice-input.xml":                                                3047,
	"parsedmarc/samples/aggregate_invalid/report_with_upper_cased_pass.xml":                           1,
	"dmarc-report-viewer/testdata/dmarc-reports/outlook.xml":                                          3,
	"niciliketo-dmarc-reports/report1.xml":                                                            1609,
	"niciliketo-dmarc-reports/test/fixtures/files/report2.xml.gz":                                     1,
	"rsturla-dmarc-monitor/services/ingest-service/internal/dmarc/rua/testdata/01-multiple-valid.xml": 7,
	"rsturla-dmarc-monitor/services/ingest-service/internal/dmarc/rua/testdata/00-empty-valid.xml":    0,
	"DmarcAnalyzerApp/src/api.tests/Fixtures/sample-zoho-aggregate.xml":                               3,
	"communitales-dmarc-report-parser/tests/Fixtures/Report/report_multiple_records.xml":              3,
	"communitales-dmarc-report-parser/tests/Fixtures/Report/report_multiple_spf.xml":                  3,
	"communitales-dmarc-report-parser/tests/Fixtures/Report/report_no_source_ip.xml":                  0,
	"go-dmarc-analyzer/testdata/valid1.xml":                                                           3,
	"go-dmarc-analyzer/testdata/valid4.xml":                                                           3,
	"avvertix-dmarc-report-parser/tests/fixtures/dmarc-as-txt.txt":                                    2,
	"avvertix-dmarc-report-parser/tests/fixtures/dmarc.xml.gz":                                        2,
	"django-dmarc/dmarc/tests/dmarcreport.xml":                                                        1,
}

var indexLine = regexp.MustCompile(`line (\d+)`)

// expectation combines INDEX.tsv with the overrides: files the index notes as malformed XML
// must fail naming the line the index names; everything else must parse.
func expectation(e corpus.Entry) corpusWant {
	if w, ok := corpusOverrides[filepath.ToSlash(e.RelPath())]; ok {
		if w.domain == "" {
			w.domain, w.reportID, w.begin, w.end = e.PolicyDomain, e.ReportID, e.DateBegin, e.DateEnd
		}
		return w
	}
	w := corpusWant{domain: e.PolicyDomain, reportID: e.ReportID, begin: e.DateBegin, end: e.DateEnd}
	if e.Malformed() {
		w.sentinel = ErrMalformed
		if m := indexLine.FindStringSubmatch(e.Notes); m != nil {
			w.msg = []string{"line " + m[1]}
		}
		return w
	}
	w.records = -1
	if len(e.Records) == 1 {
		w.records = e.Records[0]
	}
	return w
}

// readCorpusFile returns the XML of a plain or gzip-compressed (even twice) corpus file.
func readCorpusFile(t *testing.T, dir string, e corpus.Entry) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
	if err != nil {
		t.Fatal(err)
	}
	for e.Compression == "gz" && bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip: %v", err)
		}
	}
	return data
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	dir, entries := corpus.ForTest(t)
	var checked, parsed atomic.Int64
	seenTotals := map[string]bool{}
	for _, e := range entries {
		if e.Kind != "aggregate" || e.Compression != "none" && e.Compression != "gz" {
			continue
		}
		name := filepath.ToSlash(e.RelPath())
		if _, ok := corpusMessageTotals[name]; ok {
			seenTotals[name] = true
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checked.Add(1)
			want := expectation(e)
			if e.Real() && want.sentinel != nil {
				t.Errorf("real report expected to be rejected (%v): every real file must parse", want.sentinel)
			}
			rep, err := ParseBytes(readCorpusFile(t, dir, e), Limits{})
			if want.sentinel != nil {
				wantErr(t, err, want.sentinel, want.msg...)
				t.Logf("rejected as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("ParseBytes: %v (%s)", err, e.Notes)
			}
			parsed.Add(1)
			checkAgainstIndex(t, e, want, rep)
			if total, ok := corpusMessageTotals[name]; ok && rep.MessageCount() != total {
				t.Errorf("MessageCount = %d, want %d", rep.MessageCount(), total)
			}
			t.Logf("parsed: %d records, %d messages, warnings %q", len(rep.Records), rep.MessageCount(), rep.Warnings)
		})
	}
	for name := range corpusMessageTotals {
		if !seenTotals[name] {
			t.Errorf("message-total table names %s, which INDEX.tsv no longer lists as aggregate", name)
		}
	}
	t.Cleanup(func() {
		t.Logf("checked %d aggregate files (plain and gz), %d parsed", checked.Load(), parsed.Load())
		if checked.Load() < 80 {
			t.Errorf("only %d corpus files checked; the index lost entries?", checked.Load())
		}
	})
}

func checkAgainstIndex(t *testing.T, e corpus.Entry, want corpusWant, rep *Report) {
	t.Helper()
	if want.records >= 0 && len(rep.Records) != want.records {
		t.Errorf("got %d records, want %d (%s)", len(rep.Records), want.records, want.why)
	}
	if want.why != "" {
		t.Logf("override: %s", want.why)
	}
	if rep.Policy.Domain != want.domain {
		t.Errorf("policy domain %q, want %q", rep.Policy.Domain, want.domain)
	}
	if rep.ReportID != want.reportID {
		t.Errorf("report_id %q, want %q", rep.ReportID, want.reportID)
	}
	if org := strings.TrimSpace(e.ReporterOrg); org != "" && rep.OrgName != org {
		t.Errorf("org_name %q, index says %q", rep.OrgName, org)
	}
	for _, d := range []struct {
		name  string
		got   int64
		index string
	}{{"begin", rep.DateBegin.Unix(), want.begin}, {"end", rep.DateEnd.Unix(), want.end}} {
		if w, err := strconv.ParseInt(d.index, 10, 64); err != nil || d.got != w {
			t.Errorf("date %s %d, want %q", d.name, d.got, d.index)
		}
	}
	for i, r := range rep.Records {
		if !r.SourceIP.IsValid() || r.Count < 0 {
			t.Errorf("record %d: source IP %v, count %d", i, r.SourceIP, r.Count)
		}
	}
}

// notReportMessages are the reasons given for the corpus files that are no report at all.
var notReportMessages = map[string]string{
	"parsedmarc/samples/empty.xml":                                "empty input",
	"trollByte-dmarc/backend/sample_reports/malformed_report.xml": "expected <feedback>, found <invalid_root>",
	"dmarc_report_reader/tests/fixtures/non-dmarc.xml":            "expected <feedback>, found <root>",
	"swedishmike-dmarcparser/dmarc_rua_report.xml":                "expected <feedback>, found <form>",
	"compadrejunior-dmarc-reports/src/tests/assets/test.xml":      "expected <feedback>, found <test>",
	"go-dmarc-analyzer/testdata/unused.xml":                       `not XML, input starts with "unused`,
	"avvertix-dmarc-report-parser/tests/fixtures/plain.txt":       `not XML, input starts with "A text file"`,
	"godmarcparser/dmarc/testdata/notxml.xml":                     "not XML",
	"patrickkerrigan-dmarc-parser/src/test/resources/test.gz":     `not XML, input starts with "Test gzip file`,
}

func TestCorpusNotReports(t *testing.T) {
	t.Parallel()
	dir, entries := corpus.ForTest(t)
	var checked atomic.Int64
	for _, e := range entries {
		if e.Kind != "other" || e.Compression != "none" && e.Compression != "gz" {
			continue
		}
		name := filepath.ToSlash(e.RelPath())
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checked.Add(1)
			_, err := ParseBytes(readCorpusFile(t, dir, e), Limits{})
			wantErr(t, err, ErrNotReport, notReportMessages[name])
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrInvalid) {
				t.Errorf("error %q wraps more than ErrNotReport", err)
			}
			t.Logf("rejected: %v", err)
		})
	}
	t.Cleanup(func() {
		t.Logf("checked %d non-report files", checked.Load())
		if checked.Load() < int64(len(notReportMessages)) {
			t.Errorf("checked %d files, want at least the %d named here", checked.Load(), len(notReportMessages))
		}
	})
}

// TestCorpusAOLWindows1252 reads AOL's report, which declares windows-1252.
func TestCorpusAOLWindows1252(t *testing.T) {
	t.Parallel()
	dir, _ := corpus.ForTest(t)
	data, err := os.ReadFile(filepath.Join(dir, "dmarc_aggregate_parser/sample-data/dmarc.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`encoding="windows-1252"`)) {
		t.Fatal("fixture no longer declares windows-1252")
	}
	rep := mustParse(t, string(data))
	if rep.OrgName != "AOL" || len(rep.Records) != 1 || rep.Records[0].SourceIP.String() != "125.125.125.125" {
		t.Errorf("got org %q, %d records %+v", rep.OrgName, len(rep.Records), rep.Records)
	}
	// The same file with an accented org name shows the bytes are really decoded as windows-1252.
	accented := bytes.Replace(data, []byte("<org_name>AOL"), []byte("<org_name>AOL Soci\xe9t\xe9 \x93q\x94"), 1)
	if rep := mustParse(t, string(accented)); rep.OrgName != "AOL Société “q”" {
		t.Errorf("org_name %q, want %q", rep.OrgName, "AOL Société “q”")
	}
}
