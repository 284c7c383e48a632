package unwrap

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// fileExpect pins what Walk must return for one corpus file, beyond the checks derived from
// its INDEX row. Zero fields are not checked.
type fileExpect struct {
	err     error    // sentinel the error must wrap
	formats []Format // exact formats, in order
	paths   []string // exact paths, in order
	names   []string // exact names, in order
}

// corpusExpect lists the files the brief calls out, and every file where the INDEX row alone
// does not say what unwrapping yields.
var corpusExpect = map[string]fileExpect{
	// Mimecast: a gzip member followed by two stray bytes; the report must still come out.
	"parsedmarc/samples/aggregate/mimecast-weird-gzip.eml": {formats: []Format{FormatDMARC},
		names: []string{"mimecast.org!ab.id.au!1693353600!1693439999!157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e.xml"}},
	// AOL: raw zlib, no gzip header and so no name.
	"dmarcgo/testdata/fixtures/aol.com!georgestarcher.com!1342497600!1342584000.zlib": {
		formats: []Format{FormatDMARC}, paths: []string{"zlib"}, names: []string{""}},
	"dmarc-report-converter/pkg/dmarc/testdata/test.xml.gz.gz": {
		formats: []Format{FormatDMARC}, paths: []string{"gzip/test.xml"}, names: []string{"test.xml"}},
	// The zip member sits in a sub-directory; Name keeps only its base name.
	"oliverpool-go-dmarc-report/testdata/test_report.zip": {formats: []Format{FormatDMARC}, names: []string{"test_report.xml"}},
	"dmarc_report_reader/tests/fixtures/multi-report.zip": {formats: []Format{FormatDMARC, FormatDMARC, FormatDMARC}, names: []string{
		"google.com!example.com!1704067200!1704153599.xml", "microsoft.com!example.com!1704067200!1704153599.xml",
		"yahoo.com!example.com!1704067200!1704153599.xml"}},
	// Google sends a single-part message whose whole body is the zip.
	"mox/testdata/dmarc-reports/google.eml": {formats: []Format{FormatDMARC},
		paths: []string{"message/body (google.com!ueber.net!1633996800!1634083199.zip)/google.com!ueber.net!1633996800!1634083199.xml"}},
	"dmarc-report-aggregator/tests/real_reports/google.eml": {formats: []Format{FormatDMARC}},
	"parsedmarc/samples/aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml": {
		formats: []Format{FormatDMARC},
		paths:   []string{"message/part 2 (google.com!borschow.com!1549929600!1550015999.zip)/google.com!borschow.com!1549929600!1550015999.xml"}},
	// RFC 7489 B.5: the filename is folded inside its quotes; unfolding leaves one space.
	"WoodySlum-dmarc-parser/example/rfc_7489_B5.eml": {formats: []Format{FormatDMARC},
		paths: []string{"message/part 2 (mail.receiver.example!example.com! 1013662812!1013749130.gz)/example.xml"}},
	"avvertix-dmarc-report-parser/tests/fixtures/dmarc-as-txt.txt": {formats: []Format{FormatDMARC}, paths: []string{"input"}},
	// Failure reports: one part, the whole message. Exim's has no ARF part at all, the
	// Lotus Notes one ends its headers with a line of one space, Netease base64-encodes its ARF part.
	"parsedmarc/samples/failure/exim_plain_text_only_no_arf_part.eml":             {formats: []Format{FormatFailure}, paths: []string{"message"}},
	"parsedmarc/samples/forensic/subject.eml":                                     {formats: []Format{FormatFailure}, paths: []string{"message"}},
	"parsedmarc/samples/failure/[Netease DMARC Failure Report] Rent Reminder.eml": {formats: []Format{FormatFailure}},
	"parsedmarc/samples/failure/dmarc_ruf_report_linkedin.eml":                    {formats: []Format{FormatFailure}},
	"WoodySlum-dmarc-parser/example/rfc_6591_ARF_B1.eml":                          {formats: []Format{FormatFailure}},
	"tlsrpt-be/app/cmd/mail/test.eml":                                             {formats: []Format{FormatTLSRPT}}, // no close delimiter
	"mox/testdata/tlsreports/microsoft.eml": {formats: []Format{FormatTLSRPT},
		names: []string{"microsoft.com!test.xmox.nl!1673308800!1673395199!133198585438131172.json.gz"}},
	// Named "forensic", but by content an aggregate report (<feedback>, no date range): INDEX
	// rightly lists it as aggregate, and unwrapping calls it DMARC; the parser rejects it.
	"v-dmarc-dashboard/unit/fixtures/dmarc/forensic-sample.xml": {formats: []Format{FormatDMARC}},
	// Not reports.
	"parsedmarc/samples/empty.xml":                          {err: ErrEmpty},
	"avvertix-dmarc-report-parser/tests/fixtures/plain.txt": {err: ErrUnrecognised},
	"go-dmarc-analyzer/testdata/unused.xml":                 {err: ErrUnrecognised},
	"godmarcparser/dmarc/testdata/notxml.xml":               {err: ErrUnrecognised},
	// Named .gz and .zip but holding text: recognised by content, so unrecognised.
	"godmarcparser/input/testdata/corrupt.xml.gz":                 {err: ErrUnrecognised},
	"godmarcparser/input/testdata/corrupt.zip":                    {err: ErrUnrecognised},
	"compadrejunior-dmarc-reports/src/tests/assets/test.txt":      {err: ErrUnrecognised},
	"trollByte-dmarc/backend/sample_reports/malformed_report.xml": {formats: []Format{FormatXML}},
	"dmarc_report_reader/tests/fixtures/non-dmarc.xml":            {formats: []Format{FormatXML}},
	"swedishmike-dmarcparser/dmarc_rua_report.xml":                {formats: []Format{FormatXML}},
	"compadrejunior-dmarc-reports/src/tests/assets/test.xml":      {formats: []Format{FormatXML}},
	// Real containers holding a text file: the text is handed out as unknown for the caller to reject.
	"patrickkerrigan-dmarc-parser/src/test/resources/test.gz":  {formats: []Format{FormatUnknown}, names: []string{"test.txt"}},
	"patrickkerrigan-dmarc-parser/src/test/resources/test.zip": {formats: []Format{FormatUnknown}, names: []string{"test.txt"}},
	"patrickkerrigan-dmarc-parser/src/test/resources/test.gz.eml": {formats: []Format{FormatUnknown},
		paths: []string{"message/part 2 (test.gz)/test.txt"}},
	// A text/plain attachment that is really a zip: sniffed, not taken for mail text.
	"patrickkerrigan-dmarc-parser/src/test/resources/test.txt.eml": {formats: []Format{FormatUnknown},
		paths: []string{"message/part 2 (test.txt)/test.txt"}},
	"patrickkerrigan-dmarc-parser/src/test/resources/test.zip.eml":  {formats: []Format{FormatUnknown}},
	"patrickkerrigan-dmarc-parser/src/test/resources/test.none.eml": {err: ErrNoReport},
	// An ARF report of Feedback-Type abuse is no DMARC failure report.
	"WoodySlum-dmarc-parser/example/rfc_5965_B2.eml": {err: ErrNoReport},
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	dir, entries := corpus.ForTest(t)
	seen := map[string]bool{}
	for _, e := range entries {
		rel := filepath.ToSlash(e.RelPath())
		seen[rel] = true
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
			if err != nil {
				t.Fatal(err)
			}
			parts, err := walkAll(data, DefaultLimits)
			checkIndex(t, e, parts, err)
			if x, ok := corpusExpect[rel]; ok {
				checkExpect(t, x, parts, err)
			}
		})
	}
	for rel := range corpusExpect {
		if !seen[rel] {
			t.Errorf("corpusExpect names %s, which INDEX.tsv does not list", rel)
		}
	}
}

// checkIndex derives what Walk must yield from the file's INDEX row.
func checkIndex(t *testing.T, e corpus.Entry, parts []got, err error) {
	t.Helper()
	switch {
	case e.Kind == "aggregate" && !e.Malformed():
		if err != nil {
			t.Fatalf("Walk: %v; want %d DMARC parts", err, len(e.Records))
		}
		var dmarc []got
		for _, p := range parts {
			if p.Format == FormatDMARC {
				dmarc = append(dmarc, p)
			}
		}
		if len(dmarc) != len(e.Records) {
			t.Errorf("%d DMARC parts %v, INDEX lists %d reports (records %v)", len(dmarc), parts, len(e.Records), e.Records)
		}
		for _, p := range dmarc {
			if !bytes.Contains(p.Body, []byte("<feedback")) {
				t.Errorf("part %s has no <feedback", p)
			}
		}
		if e.Real() && e.ReportID != "" {
			n := 0
			for _, p := range dmarc {
				if bytes.Contains(p.Body, []byte(e.ReportID)) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("report_id %q appears in %d DMARC parts, want exactly 1", e.ReportID, n)
			}
		}
	case e.Kind == "aggregate":
		// Broken XML is the parser's to reject: unwrapping still finds the one report.
		if err != nil || !slices.Equal(formats(parts), []Format{FormatDMARC}) {
			t.Errorf("malformed aggregate: got %v, err %v; want one DMARC part and no error", parts, err)
		}
	case e.Kind == "smtp_tls":
		if err != nil || len(parts) == 0 || slices.ContainsFunc(parts, func(p got) bool { return p.Format != FormatTLSRPT }) {
			t.Errorf("TLS-RPT: got %v, err %v; want only smtp_tls parts", parts, err)
		}
	case e.Kind == "forensic":
		if err != nil || !slices.ContainsFunc(parts, func(p got) bool { return p.Format == FormatFailure }) {
			t.Errorf("failure report: got %v, err %v; want a failure part", parts, err)
		}
	default:
		checkNotReport(t, parts, err)
	}
}

// checkNotReport accepts a rejection with a known sentinel, or parts that callers reject.
func checkNotReport(t *testing.T, parts []got, err error) {
	t.Helper()
	if err != nil {
		for _, s := range []error{ErrUnrecognised, ErrEmpty, ErrNoReport, ErrCorrupt} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Errorf("not a report: error %v wraps none of the sentinels", err)
		return
	}
	for _, p := range parts {
		if p.Format != FormatXML && p.Format != FormatUnknown && p.Format != FormatJSON {
			t.Errorf("not a report: got part %s", p)
		}
	}
}

func checkExpect(t *testing.T, x fileExpect, parts []got, err error) {
	t.Helper()
	if x.err != nil {
		if !errors.Is(err, x.err) {
			t.Errorf("error %v, want one wrapping %q", err, x.err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	var paths, names []string
	for _, p := range parts {
		paths, names = append(paths, p.Path), append(names, p.Name)
	}
	if x.formats != nil && !slices.Equal(formats(parts), x.formats) {
		t.Errorf("formats %v, want %v", formats(parts), x.formats)
	}
	if x.paths != nil && !slices.Equal(paths, x.paths) {
		t.Errorf("paths\n %q\nwant\n %q", paths, x.paths)
	}
	if x.names != nil && !slices.Equal(names, x.names) {
		t.Errorf("names %q, want %q", names, x.names)
	}
	for _, p := range parts {
		if p.Format == FormatFailure && !strings.Contains(string(p.Body[:min(len(p.Body), 64<<10)]), ":") {
			t.Errorf("failure part %s does not hold the message header", p)
		}
	}
}
