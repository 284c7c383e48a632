package benchimport

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigilhq/vigil/pkg/corpus"
)

type setInfo struct {
	dir                     string
	files, reports, records int
}

// makeSet writes a set into dir. small: the corpus's parseable plain-XML real aggregate reports
// (one of each report id), copied round-robin with unique report ids until there are n files.
// large: nLarge copies of the corpus's 2,286-record report, each with its own report id.
func makeSet(corpusDir, dir, name string, n, nLarge int) (setInfo, error) {
	entries, err := corpus.Load(corpusDir)
	if err != nil {
		return setInfo{}, err
	}
	type src struct {
		data    []byte
		records int
	}
	var base []src
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Kind != "aggregate" || e.Compression != "none" || len(e.Records) != 1 || e.Malformed() {
			continue
		}
		if name == "small" && !e.Real() || name == "large" && e.Records[0] != 2286 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(corpusDir, e.RelPath()))
		if err != nil {
			return setInfo{}, err
		}
		_, rest, ok := bytes.Cut(data, []byte("<report_id>"))
		id, _, ok2 := bytes.Cut(rest, []byte("</report_id>"))
		if !ok || !ok2 || seen[string(id)] {
			continue // two corpus files carry the same report: keep one
		}
		seen[string(id)] = true
		base = append(base, src{data, e.Records[0]})
	}
	if name == "large" {
		n = nLarge
		base = base[:min(1, len(base))]
	}
	if len(base) == 0 {
		return setInfo{}, fmt.Errorf("set %s: no matching report in the corpus", name)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return setInfo{}, err
	}
	info := setInfo{dir: dir, files: n, reports: n}
	for i := range n {
		b := base[i%len(base)]
		data := bytes.Replace(b.data, []byte("</report_id>"), []byte(fmt.Sprintf("-b%d</report_id>", i)), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%05d.xml", i)), data, 0o640); err != nil {
			return setInfo{}, err
		}
		info.records += b.records
	}
	return info, nil
}
