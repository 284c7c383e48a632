package importer_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vigilhq/vigil/pkg/importer"
)

// TestReadCapped: a file is read back exactly at every size up to the cap, refused past it
// with the variable to raise named, and the size from stat is only a hint.
func TestReadCapped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const max = 4096
	for _, size := range []int{0, 1, 511, 512, 513, max - 1, max, max + 1, 3 * max} {
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := importer.ReadCapped(path, max)
		if size > max {
			if err == nil || !strings.Contains(err.Error(), "VIGIL_MAX_FILE_BYTES") {
				t.Errorf("size %d: err %v, want the cap named", size, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("size %d: read %d bytes (err %v), want the file back", size, len(got), err)
		}
	}
	if _, err := importer.ReadCapped(filepath.Join(dir, "missing"), max); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("missing file: err %v", err)
	}
}

// TestReadAllIntoGrows: the loop reads past a capacity hint that was too small (a file grown
// since stat), reads one byte at a time as well as in one go, and passes a read error on.
func TestReadAllIntoGrows(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 10_000)
	for _, hint := range []int{0, 1, 100, len(data), 2 * len(data)} {
		got, err := importer.ReadAllInto(make([]byte, 0, hint), iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("hint %d: got %d bytes, err %v", hint, len(got), err)
		}
		got, err = importer.ReadAllInto(make([]byte, 0, hint), bytes.NewReader(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("hint %d, one read: got %d bytes, err %v", hint, len(got), err)
		}
	}
	if _, err := importer.ReadAllInto(nil, iotest.ErrReader(io.ErrUnexpectedEOF)); err != io.ErrUnexpectedEOF {
		t.Errorf("read error: got %v", err)
	}
}
