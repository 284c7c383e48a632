package unwrap

import (
	"compress/gzip"
	"compress/zlib"
)

// gunzip opens a gzip layer. Only the first member is read: Mimecast appends bytes after it,
// and a strict multistream reader would fail on them (SECURITY-CASES A.6).
func (w *walker) gunzip(n node) error {
	if err := w.deeper(n); err != nil {
		return err
	}
	zr, err := gzip.NewReader(n.reader())
	if err != nil {
		return corrupt(n.path, "gzip header", err)
	}
	zr.Multistream(false)
	name := cleanName(zr.Name)
	child := n
	child.path, child.depth, child.prose = join(n.path, orDefault(name, "gzip")), n.depth+1, false
	child.name = orDefault(name, n.name)
	child = w.stream(zr, child, "gzip")
	defer release(child)
	if err := w.dispatch(child); err != nil {
		return err
	}
	return drain(child)
}

// inflate opens a raw zlib layer (AOL sends reports zlib-compressed without a gzip header).
func (w *walker) inflate(n node) error {
	if err := w.deeper(n); err != nil {
		return err
	}
	zr, err := zlib.NewReader(n.reader())
	if err != nil {
		return corrupt(n.path, "zlib header", err)
	}
	defer zr.Close()
	child := n
	child.path, child.depth, child.prose = join(n.path, "zlib"), n.depth+1, false
	child = w.stream(zr, child, "zlib")
	defer release(child)
	if err := w.dispatch(child); err != nil {
		return err
	}
	return drain(child)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
