package unwrap

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// zeroBomb returns a gzip stream of mib MiB of zeros, about 1 KB per MiB (1000:1). Compressing
// 1 GiB honestly takes seconds (longer under -race), so one MiB is compressed and flushed until
// the encoder's output per MiB repeats, and that steady-state chunk is repeated.
func zeroBomb(t testing.TB, mib int) []byte {
	t.Helper()
	b, err := makeZeroBomb(mib)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func makeZeroBomb(mib int) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	var chunks [][]byte
	for range 3 {
		zw.Write(zero)
		zw.Flush()
		chunks = append(chunks, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	zw.Close()
	if !bytes.Equal(chunks[1], chunks[2]) {
		return nil, errors.New("deflate output per MiB of zeros does not repeat; cannot build the bomb cheaply")
	}
	out := append([]byte{}, chunks[0]...)
	crc := crc32.Update(0, crc32.IEEETable, zero)
	for range mib - 1 {
		out = append(out, chunks[1]...)
		crc = crc32.Update(crc, crc32.IEEETable, zero)
	}
	out = append(out, buf.Bytes()[:buf.Len()-8]...) // final block, without the 3 MiB trailer
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(mib<<20)), nil
}

// gibBomb is shared by the tests that need 1 GiB in 1 MB; built once.
var gibBomb = sync.OnceValues(func() ([]byte, error) { return makeZeroBomb(1024) })

func gib(t testing.TB) []byte {
	t.Helper()
	b, err := gibBomb()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deflateOf strips the 10-byte header (no name) and 8-byte trailer of a gzip stream.
func deflateOf(gzipped []byte) []byte { return gzipped[10 : len(gzipped)-8] }

// rawZip builds a zip whose single entry carries the given deflate bytes and declared size.
func rawZip(t testing.TB, name string, deflated []byte, declared uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: 1,
		CompressedSize64: uint64(len(deflated)), UncompressedSize64: declared})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(deflated)
	zw.Close()
	return buf.Bytes()
}

func manyEntries(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range n {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprint(i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	return buf.Bytes()
}

func nestGzip(t testing.TB, b []byte, levels int) []byte {
	for range levels {
		b = gz(t, "", b)
	}
	return b
}

// repeatedReport is a DMARC report padded to about n bytes with identical records, which
// compress far beyond any real report.
func repeatedReport(n int) []byte {
	rec := "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>\n"
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<feedback>\n")
	for b.Len() < n {
		b.WriteString(rec)
	}
	b.WriteString("</feedback>\n")
	return []byte(b.String())
}

func TestHostile(t *testing.T) {
	t.Parallel()
	small := Limits{MaxDecompressedBytes: 1 << 20, RatioFloorBytes: 1 << 30}
	tests := []struct {
		name    string
		input   func(t *testing.T) []byte
		lim     Limits
		err     error  // sentinel; nil means success
		errText string // must appear in the error
		formats []Format
	}{
		{"gzip bomb 1 GiB in 1 MB", func(t *testing.T) []byte { return gib(t) }, DefaultLimits, ErrLimit, "exceeds", nil},
		{"gzip bomb stops at the absolute cap below the ratio floor", func(t *testing.T) []byte { return zeroBomb(t, 4) }, small, ErrLimit, "decompressed size exceeds 1 MiB", nil},
		{"zip entry expanding beyond its small declared size", func(t *testing.T) []byte {
			return rawZip(t, "bomb.xml", deflateOf(gib(t)), 1000)
		}, DefaultLimits, ErrLimit, "expands beyond its declared 1000 bytes", nil},
		{"zip entry declaring 1 GiB", func(t *testing.T) []byte {
			return rawZip(t, "bomb.xml", deflateOf(gib(t)), 1<<30)
		}, DefaultLimits, ErrLimit, `"bomb.xml": limit exceeded: entry declares 1024 MiB`, nil},
		{"zip with 100,000 entries", func(t *testing.T) []byte { return manyEntries(t, 100_000) }, DefaultLimits, ErrLimit, "zip has 100000 entries, limit 1000", nil},
		{"10 levels of gzip", func(t *testing.T) []byte { return nestGzip(t, report("deep"), 10) }, DefaultLimits, ErrLimit, "nesting deeper than 5", nil},
		{"5 levels of gzip pass", func(t *testing.T) []byte { return nestGzip(t, report("five"), 5) }, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"encrypted zip entry", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"a.xml", report("a"), nil}, zipEntry{"secret.xml", report("s"), func(h *zip.FileHeader) { h.Flags |= 1 }})
		}, DefaultLimits, ErrCorrupt, `zip entry "secret.xml": corrupt container: entry is encrypted`, nil},
		{"symbolic link entry", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"link.xml", []byte("/etc/passwd"), func(h *zip.FileHeader) { h.SetMode(fs.ModeSymlink | 0o777) }})
		}, DefaultLimits, ErrCorrupt, `zip entry "link.xml": corrupt container: entry is a symbolic link`, nil},
		{"truncated gzip", func(t *testing.T) []byte { b := gz(t, "r.xml", report("t")); return b[:len(b)-12] }, DefaultLimits, ErrCorrupt, "r.xml: corrupt container: gzip", nil},
		{"gzip with a flipped CRC", func(t *testing.T) []byte {
			b := gz(t, "r.xml", report("c"))
			b[len(b)-8] ^= 0xff
			return b
		}, DefaultLimits, ErrCorrupt, "invalid checksum", nil},
		{"zip entry with a bad CRC", func(t *testing.T) []byte {
			b := zipOf(t, zipEntry{"r.xml", report("z"), func(h *zip.FileHeader) { h.Method = zip.Store }})
			i := bytes.Index(b, []byte("<feedback>"))
			b[i+1] = 'F'
			return b
		}, DefaultLimits, ErrCorrupt, "fails its CRC-32 check", nil},
		{"random bytes", func(t *testing.T) []byte {
			b := make([]byte, 4096)
			r := rand.NewChaCha8([32]byte{1})
			r.Read(b)
			b[0] = 0xaa
			return b
		}, DefaultLimits, ErrUnrecognised, "not gzip, zip, zlib, e-mail, XML or JSON", nil},
		{"empty", func(t *testing.T) []byte { return nil }, DefaultLimits, ErrEmpty, "", nil},
		{"white space only", func(t *testing.T) []byte { return []byte(" \r\n\t\n") }, DefaultLimits, ErrEmpty, "", nil},
		{"empty zip", func(t *testing.T) []byte { return zipOf(t) }, DefaultLimits, ErrNoReport, "input: zip archive is empty", nil},
		{"zip of only directories and macOS junk", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"dir/", nil, nil}, zipEntry{"__MACOSX/._r.xml", []byte("junk"), nil}, zipEntry{"._r.xml", []byte("junk"), nil})
		}, DefaultLimits, ErrNoReport, "zip archive holds only directories and macOS metadata (3 entries)", nil},
		{"zip holding 2 reports and junk", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"a.xml", report("a"), nil}, zipEntry{"__MACOSX/._a.xml", []byte("junk"), nil}, zipEntry{"sub/b.xml", report("b"), nil})
		}, DefaultLimits, nil, "", []Format{FormatDMARC, FormatDMARC}},
		{"gzip holding XML, named .zip", func(t *testing.T) []byte { return gz(t, "report.zip", report("g")) }, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"zip holding gzip holding zip", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"r.xml.gz", gz(t, "inner.zip", zipOf(t, zipEntry{"r.xml", report("n"), nil})), nil})
		}, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"zlib", func(t *testing.T) []byte { return zlibBytes(t, report("z")) }, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"zlib with a bad checksum", func(t *testing.T) []byte {
			b := zlibBytes(t, report("z"))
			b[len(b)-1] ^= 0xff
			return b
		}, DefaultLimits, ErrCorrupt, "zlib: corrupt container: zlib: zlib: invalid checksum", nil},
		{"20 MiB report at over 200:1", func(t *testing.T) []byte { return gz(t, "", repeatedReport(20<<20)) }, DefaultLimits, ErrLimit, "exceeds 200:1", nil},
		{"5 MiB report at over 200:1 stays below the floor", func(t *testing.T) []byte { return gz(t, "", repeatedReport(5<<20)) }, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"input over MaxInputBytes", func(t *testing.T) []byte { return report(strings.Repeat("x", 2000)) }, Limits{MaxInputBytes: 1024}, ErrLimit, "input: limit exceeded: input is", nil},
		{"parts together over MaxTotalBytes", func(t *testing.T) []byte {
			r := repeatedReport(300 << 10)
			return zipOf(t, zipEntry{"a.xml", r, nil}, zipEntry{"b.xml", r, nil}, zipEntry{"c.xml", r, nil})
		}, Limits{MaxTotalBytes: 512 << 10}, ErrLimit, "all parts together exceed 512 KiB", nil},
		{"zip entries over MaxEntries", func(t *testing.T) []byte { return manyEntries(t, 11) }, Limits{MaxEntries: 10}, ErrLimit, "zip has 11 entries, limit 10", nil},
		{"stored zip entry", func(t *testing.T) []byte {
			return zipOf(t, zipEntry{"r.xml", report("m"), func(h *zip.FileHeader) { h.Method = zip.Store }})
		}, DefaultLimits, nil, "", []Format{FormatDMARC}},
		{"bzip2 zip entry", func(t *testing.T) []byte {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			w, _ := zw.CreateRaw(&zip.FileHeader{Name: "r.xml.bz2", Method: 12, CompressedSize64: 3, UncompressedSize64: 3})
			w.Write([]byte("BZh"))
			zw.Close()
			return buf.Bytes()
		}, DefaultLimits, ErrUnrecognised, `"r.xml.bz2": unrecognised format: compression method 12`, nil},
		{"gzip entries expanding past MaxTotalBytes", func(t *testing.T) []byte {
			g := gz(t, "", repeatedReport(300<<10))
			return zipOf(t, zipEntry{"a.xml.gz", g, nil}, zipEntry{"b.xml.gz", g, nil}, zipEntry{"c.xml.gz", g, nil})
		}, Limits{MaxTotalBytes: 512 << 10}, ErrLimit, "b.xml.gz/gzip: limit exceeded: all parts together exceed 512 KiB", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parts, err := walkAll(tc.input(t), tc.lim)
			if tc.err == nil {
				if err != nil || !slices.Equal(formats(parts), tc.formats) {
					t.Fatalf("got %v, err %v; want formats %v and no error", parts, err, tc.formats)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.errText) {
				t.Fatalf("error %q; want one wrapping %q and containing %q", err, tc.err, tc.errText)
			}
		})
	}
}

// TestZipSlipNames checks that hostile entry names become plain labels.
func TestZipSlipNames(t *testing.T) {
	t.Parallel()
	names := []string{"../../x.xml", "/abs/y.xml", `..\..\win.xml`, "C:/drive.xml", "nul\x00byte.xml", "..", "ctl\x1b[31m.xml", strings.Repeat("é", 300) + ".xml"}
	var entries []zipEntry
	for _, n := range names {
		entries = append(entries, zipEntry{n, report(n), nil})
	}
	parts, err := walkAll(zipOf(t, entries...), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x.xml", "y.xml", "win.xml", "drive.xml", "nulbyte.xml", "", "ctl[31m.xml"}
	if len(parts) != len(names) {
		t.Fatalf("%d parts for %d entries: %v", len(parts), len(names), parts)
	}
	for i, p := range parts {
		if strings.ContainsAny(p.Name, "/\\\x00") || strings.Contains(p.Name, "..") || len(p.Name) > maxNameLen {
			t.Errorf("entry %q: unsafe name %q", names[i], p.Name)
		}
		if i < len(want) && p.Name != want[i] {
			t.Errorf("entry %q: name %q, want %q", names[i], p.Name, want[i])
		}
		if p.Format != FormatDMARC {
			t.Errorf("entry %q: format %s, want dmarc (names never decide)", names[i], p.Format)
		}
	}
}

// TestBodyErrors checks that Walk reports a limit or a bad checksum even when fn stops reading
// early or swallows the read error, and that fn's own error names the part.
func TestBodyErrors(t *testing.T) {
	t.Parallel()
	bad := gz(t, "r.xml", report("crc"))
	bad[len(bad)-8] ^= 0xff
	boom := errors.New("boom")
	tests := []struct {
		name  string
		input []byte
		fn    func(Part) error
		want  error
		text  string
	}{
		{"fn reads nothing, CRC is bad", bad, func(Part) error { return nil }, ErrCorrupt, "r.xml: corrupt container"},
		{"fn swallows the read error", bad, func(p Part) error { io.ReadAll(p.Body); return nil }, ErrCorrupt, "invalid checksum"},
		{"fn returns the read error wrapped", bad, func(p Part) error {
			_, err := io.ReadAll(p.Body)
			return fmt.Errorf("parse: %w", err)
		}, ErrCorrupt, "parse: r.xml: corrupt container"},
		{"fn fails", zipOf(t, zipEntry{"a.xml", report("a"), nil}, zipEntry{"b.xml", report("b"), nil}), func(p Part) error { return boom }, boom, "a.xml: boom"},
		{"fn reads part of a bomb", zeroBomb(t, 8), func(p Part) error { p.Body.Read(make([]byte, 10)); return nil }, ErrLimit, "decompressed size exceeds 1 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := Walk(tc.input, Limits{MaxDecompressedBytes: 1 << 20}, func(p Part) error { calls++; return tc.fn(p) })
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.text) {
				t.Errorf("error %q; want one wrapping %q and containing %q", err, tc.want, tc.text)
			}
			if calls != 1 {
				t.Errorf("fn called %d times, want 1 (the walk stops at the first error)", calls)
			}
		})
	}
}

// TestBodyAfterCallback checks that a Body kept past its callback reads nothing, since its
// buffer is reused by other walks.
func TestBodyAfterCallback(t *testing.T) {
	t.Parallel()
	var kept io.Reader
	if err := Walk(gz(t, "", report("kept")), DefaultLimits, func(p Part) error { kept = p.Body; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := kept.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Errorf("Read after the callback = %d, %v; want 0 and an error", n, err)
	}
}

// TestMemoryFlat checks that bombs are streamed, not buffered. It is not parallel on purpose:
// allocation counters are process-wide, and parallel tests only start once it has finished.
func TestMemoryFlat(t *testing.T) {
	inputs := map[string][]byte{
		"gzip bomb": gib(t),
		"zip bomb":  rawZip(t, "bomb.xml", deflateOf(gib(t)), 150<<20),
	}
	for name, data := range inputs {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		read := int64(0)
		err := Walk(data, DefaultLimits, func(p Part) error {
			n, err := io.Copy(io.Discard, p.Body)
			read += n
			return err
		})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrLimit) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want a limit or corrupt error", name, err)
		}
		if read < 100<<20 {
			t.Errorf("%s: only %d bytes streamed before the error; the test measures nothing", name, read)
		}
		const bound = 64 << 20
		if grew := after.TotalAlloc - before.TotalAlloc; grew > bound {
			t.Errorf("%s: allocated %d MiB while streaming %d MiB, want under %d MiB", name, grew>>20, read>>20, bound>>20)
		}
		t.Logf("%s: streamed %d MiB, allocated %d KiB: %v", name, read>>20, (after.TotalAlloc-before.TotalAlloc)>>10, err)
	}
}
