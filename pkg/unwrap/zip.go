package unwrap

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
	"strings"
)

// unzip opens a zip archive and walks every entry. Everything that can be checked without
// decompressing (entry count, declared sizes, encryption, entry types, methods) is checked
// for all entries first, so an archive is rejected before any of its parts is handed out.
func (w *walker) unzip(n node) error {
	if err := w.deeper(n); err != nil {
		return err
	}
	b, err := n.bytes(w.lim.MaxDecompressedBytes, "zip archive")
	if err != nil {
		return err
	}
	if count, ok := zipEntryCount(b); ok && count > uint64(w.lim.MaxEntries) {
		return fmt.Errorf("%s: %w: zip has %d entries, limit %d", label(n.path), ErrLimit, count, w.lim.MaxEntries)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are only labels here
		return corrupt(n.path, "zip", err)
	}
	if len(zr.File) > w.lim.MaxEntries {
		return fmt.Errorf("%s: %w: zip has %d entries, limit %d", label(n.path), ErrLimit, len(zr.File), w.lim.MaxEntries)
	}
	files, err := w.zipFiles(n, zr.File)
	if err != nil {
		return err
	}
	switch {
	case len(zr.File) == 0:
		w.noReport(label(n.path) + ": zip archive is empty")
		return nil
	case len(files) == 0:
		w.noReport(fmt.Sprintf("%s: zip archive holds only directories and macOS metadata (%d entries)", label(n.path), len(zr.File)))
		return nil
	}
	for i, f := range files {
		if err := w.zipEntry(n, f, i); err != nil {
			return err
		}
	}
	return nil
}

// zipFiles drops packaging junk and refuses entries that could not be read whole, naming them.
func (w *walker) zipFiles(n node, all []*zip.File) ([]*zip.File, error) {
	var files []*zip.File
	var declared uint64
	for _, f := range all {
		if zipJunk(f) {
			continue
		}
		where := fmt.Sprintf("%s: zip entry %q", label(n.path), cleanName(f.Name))
		switch {
		case f.Flags&0x1 != 0:
			return nil, fmt.Errorf("%s: %w: entry is encrypted", where, ErrCorrupt)
		case f.Mode().Type()&^fs.ModeDir != 0:
			return nil, fmt.Errorf("%s: %w: entry is a %s, not a regular file", where, ErrCorrupt, fileType(f.Mode()))
		case f.Method != zip.Store && f.Method != zip.Deflate:
			return nil, fmt.Errorf("%s: %w: compression method %d (only stored and deflate are supported)", where, ErrUnrecognised, f.Method)
		case f.UncompressedSize64 > uint64(w.lim.MaxDecompressedBytes):
			return nil, fmt.Errorf("%s: %w: entry declares %s, decompressed size exceeds %s", where, ErrLimit, size(int64(min(f.UncompressedSize64, 1<<62))), size(w.lim.MaxDecompressedBytes))
		case int64(f.UncompressedSize64) > w.lim.RatioFloorBytes && float64(f.UncompressedSize64) > w.lim.MaxRatio*float64(w.inSize):
			return nil, fmt.Errorf("%s: %w: entry declares %s, ratio %.1f:1 exceeds %g:1", where, ErrLimit, size(int64(f.UncompressedSize64)), float64(f.UncompressedSize64)/float64(w.inSize), w.lim.MaxRatio)
		}
		declared += f.UncompressedSize64
		files = append(files, f)
	}
	if declared > uint64(w.lim.MaxTotalBytes) {
		return nil, fmt.Errorf("%s: %w: zip entries declare %s together, all parts together exceed %s", label(n.path), ErrLimit, size(int64(declared)), size(w.lim.MaxTotalBytes))
	}
	return files, nil
}

// zipJunk reports directories and the metadata macOS adds to archives it creates.
func zipJunk(f *zip.File) bool {
	name := strings.ReplaceAll(f.Name, `\`, "/")
	if (f.Mode().IsDir() || strings.HasSuffix(name, "/")) && f.UncompressedSize64 == 0 {
		return true
	}
	base := path.Base(name)
	return strings.HasPrefix(name, "__MACOSX/") || strings.Contains(name, "/__MACOSX/") ||
		strings.HasPrefix(base, "._") || base == ".DS_Store"
}

func fileType(m fs.FileMode) string {
	if m&fs.ModeSymlink != 0 {
		return "symbolic link"
	}
	return "special file"
}

// zipEntry decompresses one entry itself rather than through File.Open, so that an entry
// expanding beyond its declared size is reported as the bomb it is (ErrLimit) and not as a
// generic format error.
func (w *walker) zipEntry(n node, f *zip.File, i int) error {
	name := cleanName(f.Name)
	child := n
	child.path, child.name, child.depth, child.prose = join(n.path, orDefault(name, fmt.Sprintf("entry %d", i+1))), name, n.depth+1, false
	raw, err := f.OpenRaw()
	if err != nil {
		return corrupt(child.path, "zip entry", err)
	}
	er := &entryReader{r: raw, f: f, crc: crc32.NewIEEE(), path: child.path}
	if f.Method == zip.Deflate {
		fr := flate.NewReader(raw)
		defer fr.Close()
		er.r = fr
	}
	child = w.stream(er, child, "zip entry")
	defer release(child)
	if err := w.dispatch(child); err != nil {
		return err
	}
	return drain(child)
}

// entryReader checks an entry against its central directory record: never more bytes than
// declared, and at the end exactly the declared size and CRC-32.
type entryReader struct {
	r    io.Reader
	f    *zip.File
	crc  hash.Hash32
	n    uint64
	path string
}

func (e *entryReader) Read(p []byte) (int, error) {
	k, err := e.r.Read(p)
	e.n += uint64(k)
	e.crc.Write(p[:k])
	if e.n > e.f.UncompressedSize64 {
		return 0, fmt.Errorf("%s: %w: zip entry expands beyond its declared %s (%w)", label(e.path), ErrLimit, size(int64(e.f.UncompressedSize64)), ErrCorrupt)
	}
	if err == io.EOF {
		switch {
		case e.n != e.f.UncompressedSize64:
			return k, fmt.Errorf("%s: %w: zip entry is %d bytes, its header says %d", label(e.path), ErrCorrupt, e.n, e.f.UncompressedSize64)
		case e.f.CRC32 != 0 && e.crc.Sum32() != e.f.CRC32: // like archive/zip, 0 means "not recorded"
			return k, fmt.Errorf("%s: %w: zip entry fails its CRC-32 check", label(e.path), ErrCorrupt)
		}
	}
	return k, err
}

// zipEntryCount reads the entry count from the end-of-central-directory record (or its zip64
// form), so that a huge directory is refused before archive/zip allocates a File per entry.
// Like archive/zip, it takes the last signature whose comment fits in the file.
func zipEntryCount(b []byte) (uint64, bool) {
	const eocdLen, zip64LocLen = 22, 20
	from := max(0, len(b)-eocdLen-0xffff)
	i := len(b)
	for {
		i = bytes.LastIndex(b[from:i], []byte("PK\x05\x06"))
		if i < 0 {
			return 0, false
		}
		i += from
		if len(b)-i >= eocdLen && i+eocdLen+int(binary.LittleEndian.Uint16(b[i+20:])) <= len(b) {
			break
		}
	}
	count := uint64(binary.LittleEndian.Uint16(b[i+10:]))
	if count == 0xffff && i >= zip64LocLen && bytes.HasPrefix(b[i-zip64LocLen:], []byte("PK\x06\x07")) {
		off := binary.LittleEndian.Uint64(b[i-zip64LocLen+8:])
		if off <= uint64(len(b)) && uint64(len(b))-off >= 56 && bytes.HasPrefix(b[off:], []byte("PK\x06\x06")) {
			count = binary.LittleEndian.Uint64(b[off+32:])
		}
	}
	return count, true
}
