package failure

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

func TestDump(t *testing.T) {
	dir, entries := corpus.ForTest(t)
	for _, e := range entries {
		if e.Kind != "forensic" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.RelPath()))
		r, err := Parse(b, Options{Redact: true})
		if err != nil {
			t.Logf("%s: %v", e.RelPath(), err)
			continue
		}
		r.SampleHeaders = r.SampleHeaders[:min(3, len(r.SampleHeaders))]
		j, _ := json.Marshal(r)
		t.Logf("%s:\n%s", e.RelPath(), j)
	}
}
