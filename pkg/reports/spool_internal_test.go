package reports

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
)

// Parts are held in memory while the request's budget lasts and spooled to temp files after
// it; an oversized part is refused wherever it was going, and every file reads back whole.
func TestSpoolMemoryThenDisk(t *testing.T) {
	t.Parallel()
	parts := []struct {
		form, name string
		size       int
		memory     bool // held in memory (else a temp file)
		refused    bool
	}{
		{"files", "a.xml", 10, true, false},
		{"note", "", 50, false, false}, // not a file: skipped, costs no budget
		{"files", "b.xml", 20, true, false},
		{"files", "c.xml", 15, false, false}, // 2 bytes of budget left
		{"files", "big.xml", 200, false, true},
		{"files", "e.xml", 2, true, false},
		{"files", "empty.xml", 0, true, false},
		{"files", "f.xml", 100, false, false}, // exactly the file limit
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	want := map[string][]byte{}
	for i, p := range parts {
		data := bytes.Repeat([]byte{byte('a' + i)}, p.size)
		if p.form != "files" {
			w, _ := mw.CreateFormField(p.form)
			w.Write(data)
			continue
		}
		w, err := mw.CreateFormFile("files", p.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		want[p.name] = data
	}
	mw.Close()
	dir := t.TempDir()
	a := New(Deps{TempDir: dir, SpoolMemory: 32, Limits: Limits{UploadFiles: 100, UploadBytes: 1 << 20, FileBytes: 100}})
	req, _ := http.NewRequest(http.MethodPost, "/api/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	files, err := a.spool(req)
	if err != nil {
		t.Fatal(err)
	}
	var fileParts []int
	for i, p := range parts {
		if p.form == "files" {
			fileParts = append(fileParts, i)
		}
	}
	if len(files) != len(fileParts) {
		t.Fatalf("%d files spooled, want %d", len(files), len(fileParts))
	}
	onDisk := 0
	for k, f := range files {
		p := parts[fileParts[k]]
		if f.name != p.name {
			t.Fatalf("file %d is %q, want %q", k, f.name, p.name)
		}
		if f.path != "" {
			onDisk++
		}
		if p.refused {
			if !strings.Contains(f.refusal, "100-byte limit") {
				t.Errorf("%s: refusal %q, want the file limit", p.name, f.refusal)
			}
			continue
		}
		if f.refusal != "" {
			t.Errorf("%s: refused: %s", p.name, f.refusal)
		}
		if inMem := f.path == ""; inMem != p.memory {
			t.Errorf("%s: in memory %v, want %v", p.name, inMem, p.memory)
		}
		got, err := f.contents()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[p.name]) || f.size != int64(p.size) {
			t.Errorf("%s: read back %d bytes (size %d), want %d", p.name, len(got), f.size, p.size)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != onDisk || onDisk != 3 { // c, big (cut at the limit), f
		t.Errorf("%d temp files for %d spooled to disk, want 3", len(entries), onDisk)
	}
}
