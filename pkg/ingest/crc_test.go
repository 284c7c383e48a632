package ingest_test

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Issue 18 (SECURITY-CASES A.6): a gzip whose CRC is wrong fails naming the checksum, not as
// "trailing data after </feedback>" (the bad CRC only shows when the XML has been read), and
// stores nothing.
func TestBadGzipChecksumIsNamed(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(corpusFile(t, niceXML))
	zw.Close()
	data := buf.Bytes()
	data[len(data)-8] ^= 0xff // the CRC-32 in the trailer
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		bu := setup(t, b, nil, nil)
		ing := bu.accept(t, "bad-crc.xml.gz", data)
		if ing.Status != store.StatusFailed || !strings.Contains(ing.Error, "checksum") || strings.Contains(ing.Error, "trailing data") {
			t.Fatalf("%s: %q, want failed naming the checksum", ing.Status, ing.Error)
		}
		if testing.Verbose() {
			t.Logf("error: %s", ing.Error)
		}
		if n := bu.totalReports(t); n != 0 {
			t.Fatalf("%d reports stored from a corrupt file", n)
		}
	})
}
