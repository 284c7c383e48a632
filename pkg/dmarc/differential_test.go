package dmarc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

// diffLimits are the limits both parsers run with: the defaults, and small depth and record
// caps so that inputs of fuzzing size reach them. The token cap is left at its default: the new
// scanner counts a token's own bytes exactly (see TestTokenCapExact), where encoding/xml's
// count was one byte off either way depending on the token before.
var diffLimits = []Limits{{}, {MaxDepth: 5, MaxRecords: 2}}

// FuzzTokenizerDifferential parses every input with the parser over the hand-written scanner
// and with the parser as it was over encoding/xml (legacy_test.go): both must accept or both
// reject, with the same error message; accepted reports (records and warnings included) must
// be deeply equal. Seeds are in testdata/fuzz/FuzzTokenizerDifferential.
func FuzzTokenizerDifferential(f *testing.F) {
	f.Add([]byte(report(record("192.0.2.1", "3"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		compareWithLegacy(t, data)
	})
}

func compareWithLegacy(t *testing.T, data []byte) {
	t.Helper()
	for _, lim := range diffLimits {
		rep, err := ParseBytes(data, lim)
		old, oldErr := legacyParseBytes(data, lim)
		if (err == nil) != (oldErr == nil) {
			t.Fatalf("limits %+v: new parser error %v, encoding/xml parser error %v", lim, err, oldErr)
		}
		if err != nil {
			if err.Error() != oldErr.Error() || sentinelOf(err) != sentinelOf(oldErr) {
				t.Fatalf("limits %+v: errors differ:\nnew: %v\nold: %v", lim, err, oldErr)
			}
			continue
		}
		if !reflect.DeepEqual(rep, old) {
			t.Fatalf("limits %+v: reports differ:\nnew: %+v\nold: %+v", lim, rep, old)
		}
	}
}

// compareStreamsWithLegacy is compareWithLegacy for Parse over readers of a few read sizes.
func compareStreamsWithLegacy(t *testing.T, data []byte) {
	t.Helper()
	for _, read := range []int{7, 4096, 1 << 20} {
		rep, err := Parse(&chunkReader{r: bytes.NewReader(data), n: read}, Limits{})
		old, oldErr := legacyParse(&chunkReader{r: bytes.NewReader(data), n: read}, Limits{})
		if (err == nil) != (oldErr == nil) || err != nil && err.Error() != oldErr.Error() {
			t.Fatalf("%d-byte reads: new parser error %v, encoding/xml parser error %v", read, err, oldErr)
		}
		if !reflect.DeepEqual(rep, old) {
			t.Fatalf("%d-byte reads: reports differ:\nnew: %+v\nold: %+v", read, rep, old)
		}
	}
}

// TestTokenizerDifferentialLarge compares the parsers on reports larger than the read buffer,
// in UTF-8 and in windows-1252 (whose decoder feeds the scanner in chunks of its own), from a
// slice and from readers.
func TestTokenizerDifferentialLarge(t *testing.T) {
	t.Parallel()
	var recs []string
	for i := range 400 {
		r := record(fmt.Sprintf("10.0.%d.%d", i/256, i%256), strconv.Itoa(i+1))
		r = strings.Replace(r, "<header_from>example.com", "<header_from>ex&amp;ample&#233;.com\r\n", 1)
		if i%3 == 0 {
			r = strings.Replace(r, "<row>", "<row><!-- r\x93"+strings.Repeat("-x", i)+" --><![CDATA[ ]]>", 1)
		}
		recs = append(recs, r)
	}
	utf8Doc := strings.Replace(report(recs...), "Example Org", "Soci\u00e9t\u00e9", 1)
	cp1252 := strings.Replace(strings.Replace(report(recs...), "Example Org", "Soci\xe9t\xe9 \x93q\x94", 1),
		"UTF-8", "windows-1252", 1)
	for _, doc := range []string{utf8Doc, cp1252, strings.Replace(cp1252, "</feedback>", "</feedback\xe9>", 1)} {
		compareWithLegacy(t, []byte(doc))
		compareStreamsWithLegacy(t, []byte(doc))
	}
	if rep, err := ParseBytes([]byte(cp1252), Limits{}); err != nil || rep.OrgName != "Société “q”" || len(rep.Records) != 400 {
		t.Errorf("windows-1252 report: %v", err)
	}
}

func sentinelOf(err error) error {
	for _, s := range []error{ErrNotReport, ErrMalformed, ErrInvalid} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// TestTokenizerDifferentialCorpus runs the differential check on every corpus file, plain or
// gzip, whatever its kind, and on the FuzzParse seeds.
func TestTokenizerDifferentialCorpus(t *testing.T) {
	t.Parallel()
	dir, entries := corpus.ForTest(t)
	n := 0
	for _, e := range entries {
		if e.Compression != "none" && e.Compression != "gz" {
			continue
		}
		data := readCorpusFile(t, dir, e)
		n++
		t.Run(filepath.ToSlash(e.RelPath()), func(t *testing.T) {
			t.Parallel()
			compareWithLegacy(t, data)
			compareStreamsWithLegacy(t, data)
		})
	}
	seeds, err := filepath.Glob("testdata/fuzz/FuzzParse/*")
	if err != nil || len(seeds) == 0 {
		t.Fatalf("no FuzzParse seeds: %v", err)
	}
	for _, name := range seeds {
		data := readFuzzSeed(t, name)
		n++
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			compareWithLegacy(t, data)
		})
	}
	t.Logf("compared %d inputs", n)
}

// readFuzzSeed reads a file in the "go test fuzz v1" format holding one []byte.
func readFuzzSeed(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz seed", name)
	}
	body := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(body, "[]byte(") || !strings.HasSuffix(body, ")") {
		t.Fatalf("%s: not a []byte seed", name)
	}
	s, err := strconv.Unquote(body[len("[]byte(") : len(body)-1])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}
