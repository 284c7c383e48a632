package importer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
		// junk.txt was stored (and failed) the first time: a copy of a failed file fails too.
		if again.Processed != 0 || again.Duplicate != good+1 || len(again.Failed) != 3 || again.OK() {
			t.Fatalf("second import: %+v", again)
		}
		out.Reset()
		again.Print(&out)
		if !strings.Contains(out.String(), "junk.txt: the same file was already received as ingest") || !strings.Contains(out.String(), "which failed: ") {
			t.Errorf("second summary does not say junk.txt failed before:\n%s", out.String())
		}
	})
}

// A rerun after a crash: the files a killed import stored but never parsed are pending. The
// rerun processes them and counts them processed (not duplicate); files finished before are
// duplicates; a file and its copy in the same run count once each.
func TestRunAfterCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 3*ingest.BatchFiles + 7
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("r%03d.xml", i))
		if err := os.WriteFile(p, reportXML(fmt.Sprintf("crash-%d", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := os.WriteFile(filepath.Join(dir, "zz-copy.xml"), reportXML("crash-0"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		svc := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 1 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
		// The crash: every file stored, the first 10 parsed, the rest never.
		var files []ingest.File
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, ingest.File{Name: filepath.Base(p), Source: "import", Data: data})
		}
		var ids []int64
		for start := 0; start < len(files); start += ingest.BatchFiles {
			res, err := svc.AcceptBatch(ctx, files[start:min(start+ingest.BatchFiles, len(files))])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				ids = append(ids, r.IngestID)
			}
		}
		if _, err := svc.ProcessBatch(ctx, ids[:10]); err != nil {
			t.Fatal(err)
		}
		im := &importer.Importer{Ingest: svc, Store: st, Inline: true, Concurrency: 2, MaxFile: 1 << 20}
		sum, err := im.Run(ctx, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Files != n+1 || sum.Processed != n-10 || sum.Reports != n-10 || sum.Duplicate != 11 || len(sum.Failed) != 0 || !sum.OK() {
			t.Fatalf("rerun: %+v, want %d processed, 11 duplicate", sum, n-10)
		}
		ings, err := st.GetIngests(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, ing := range ings {
			if ing.Status != "processed" {
				t.Errorf("ingest %d is %s after the rerun", ing.ID, ing.Status)
			}
		}
	})
}

// The bar's rate is files over the time since the import began, not over the microseconds
// before its first update.
func TestBarRate(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	im := &importer.Importer{Progress: &out}
	bar := importer.NewBar(im, 1000)
	time.Sleep(300 * time.Millisecond)
	bar.Add(30)
	m := regexp.MustCompile(`(\d+) files/s`).FindAllStringSubmatch(out.String(), -1)
	if len(m) == 0 {
		t.Fatalf("no rate in %q", out.String())
	}
	if rate, _ := strconv.Atoi(m[len(m)-1][1]); rate > 100 {
		t.Errorf("first rate %d files/s, want at most 100 (30 files in 300 ms)", rate)
	}
}
