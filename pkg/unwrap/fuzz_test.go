package unwrap

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzWalk/seed-* from fuzzSeeds")

// fuzzLimits are small so that the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{
	MaxInputBytes:        1 << 20,
	MaxDecompressedBytes: 64 << 10,
	MaxTotalBytes:        128 << 10,
	MaxRatio:             50,
	RatioFloorBytes:      16 << 10,
	MaxEntries:           20,
	MaxDepth:             4,
	MaxMessageDepth:      2,
}

func FuzzWalk(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzWalk (written by TestFuzzSeeds), not in f.Add.
	f.Fuzz(func(t *testing.T, data []byte) {
		var total int64
		parts := 0
		err := Walk(data, fuzzLimits, func(p Part) error {
			parts++
			if strings.ContainsAny(p.Name, "/\\\x00") || len(p.Name) > maxNameLen || !utf8.ValidString(p.Name) {
				t.Errorf("unsafe name %q", p.Name)
			}
			switch p.Format {
			case FormatDMARC, FormatXML, FormatTLSRPT, FormatJSON, FormatFailure, FormatUnknown:
			default:
				t.Errorf("part %q: format %q is none of the constants", p.Path, p.Format)
			}
			n, err := io.Copy(io.Discard, p.Body)
			if total += n; total > fuzzLimits.MaxTotalBytes {
				t.Fatalf("%d bytes handed out, MaxTotalBytes is %d", total, fuzzLimits.MaxTotalBytes)
			}
			return err
		})
		if err == nil && parts == 0 {
			t.Error("nil error but no part handed out")
		}
		if err != nil && !wrapsSentinel(err) {
			t.Errorf("error %q wraps no sentinel", err)
		}
	})
}

func wrapsSentinel(err error) bool {
	for _, s := range []error{ErrLimit, ErrUnrecognised, ErrCorrupt, ErrEmpty, ErrNoReport} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzSeeds are tiny instances of every container and payload, so that the fuzzer starts from
// valid structure instead of having to discover gzip and MIME from scratch.
func fuzzSeeds(t testing.TB) map[string][]byte {
	x := []byte(`<?xml version="1.0"?><feedback><report_metadata><report_id>1</report_id></report_metadata></feedback>`)
	tls := []byte(`{"organization-name":"o","policies":[]}`)
	return map[string][]byte{
		"xml":          x,
		"tlsrpt":       tls,
		"gzip":         gz(t, "r.xml", x),
		"gzip-gzip":    gz(t, "", gz(t, "r.xml", x)),
		"gzip-trailer": append(gz(t, "", x), '\r', '\n'),
		"zlib":         zlibBytes(t, x),
		"zip":          zipOf(t, zipEntry{"a.xml", x, nil}, zipEntry{"__MACOSX/._a.xml", []byte("j"), nil}, zipEntry{"d/b.json", tls, nil}),
		"zip-empty":    zipOf(t),
		"mail-gzip": mailOf("Report", mailPart{textPart, "hi"},
			mailPart{gzipB64 + "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9.xml.gz\r\n", b64(gz(t, "", x))}),
		"mail-single-zip": singleMail("Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n", b64(zipOf(t, zipEntry{"r.xml", x, nil}))),
		"mail-forward":    forward(singleMail("Content-Type: text/xml\r\nContent-Transfer-Encoding: quoted-printable\r\n", string(x))),
		"mail-arf": []byte("From: a@example.net\r\nContent-Type: multipart/report; boundary=\"a\"\r\n\r\n--a\r\n" +
			"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\n--a--\r\n"),
	}
}

// TestFuzzSeeds keeps the committed seed files equal to fuzzSeeds; run with -update-seeds
// after changing them.
func TestFuzzSeeds(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "fuzz", "FuzzWalk")
	for name, b := range fuzzSeeds(t) {
		file := filepath.Join(dir, "seed-"+name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(have, want) {
			t.Errorf("%s is missing or stale (%v); run go test -run TestFuzzSeeds ./pkg/unwrap -args -update-seeds", file, err)
		}
	}
}
