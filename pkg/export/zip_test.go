package export_test

import (
	"archive/zip"
	"bytes"
	"io"
	"testing"
)

// unzipAll is every file of a zip (an XLSX) concatenated.
func unzipAll(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(&out, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	return out.Bytes()
}
