package importer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/importer"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

func reportXML(id string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0"?><feedback><report_metadata><org_name>import.example</org_name>`+
		`<email>d@import.example</email><report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704153599</end>`+
		`</date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`+
		`<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated><disposition>none</disposition>`+
		`<dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>`+
		`</identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>`, id))
}

// An inline import of more files than one batch: every file is accounted for, bad ones with a
// reason, and importing the same folder again stores nothing new.
func TestRunInline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const good = 2*ingest.BatchFiles + 5
	for i := range good {
		write(fmt.Sprintf("r%03d.xml", i), reportXML(fmt.Sprintf("r%d", i)))
	}
	write("copy-of-r000.xml", reportXML("r0"))
	write("junk.txt", []byte("not a report"))
	write("empty.xml", nil)
	write("big.xml", bytes.Repeat([]byte("x"), 5000))
	write(".hidden.xml", reportXML("hidden"))
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		svc := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 4000, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
		im := &importer.Importer{Ingest: svc, Store: st, Inline: true, Concurrency: 3, MaxFile: 4000}
		sum, err := im.Run(context.Background(), []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Files != good+4 || sum.Processed != good || sum.Reports != good || sum.Duplicate != 1 || len(sum.Failed) != 3 {
			t.Fatalf("first import: %+v", sum)
		}
		var out strings.Builder
		sum.Print(&out)
		for _, name := range []string{"junk.txt: ", "empty.xml: empty file", "big.xml: file is larger"} {
			if !strings.Contains(out.String(), name) {
				t.Errorf("summary does not explain %q:\n%s", name, out.String())
			}
		}
		again, err := im.Run(context.Background(), []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		// junk.txt was stored (and failed) the first time: now its bytes are a duplicate.
		if again.Processed != 0 || again.Duplicate != good+2 || len(again.Failed) != 2 {
			t.Fatalf("second import: %+v", again)
		}
	})
}
