package tlsrpt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// FuzzParse: no input makes the parser panic, and what it accepts is within its limits
// (make fuzz; interesting inputs are kept in testdata/fuzz/FuzzParse).
func FuzzParse(f *testing.F) {
	if dir, err := corpus.Dir(); err == nil {
		for _, rel := range []string{"parsedmarc/samples/smtp_tls/rfc8460.json", "DmarcAnalyzerApp/src/api.tests/Fixtures/sample-lenient-tls.json",
			"DmarcAnalyzerApp/src/api.tests/Fixtures/sample-google-tls.json"} {
			if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":"1"}}`))
	f.Add([]byte(`{"policies":[[[[]]]]}`))
	lim := Limits{MaxBytes: 1 << 20, MaxPolicies: 10, MaxFailureDetails: 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b, lim)
		if err != nil {
			return
		}
		if len(r.Policies) > 10 || r.ReportID == "" || r.DateEnd.Before(r.DateBegin) {
			t.Fatalf("accepted out of bounds: %d policies, id %q, %v..%v", len(r.Policies), r.ReportID, r.DateBegin, r.DateEnd)
		}
		ok, failed := r.Totals()
		if ok < 0 || failed < 0 || ok > maxSessions || failed > maxSessions {
			t.Fatalf("sessions %d/%d", ok, failed)
		}
	})
}
