// Package corpus locates the shared real-world report corpus (../shared/corpus beside the
// module root) and reads its INDEX.tsv, so tests and benchmarks in every package walk the same
// table instead of each keeping its own list of files. The files are read in place: they are
// other projects' test data and must never be copied into this repository.
package corpus

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Entry is one row of INDEX.tsv.
type Entry struct {
	SHA256       string
	Repo         string
	Path         string // relative to the repo folder
	Kind         string // aggregate, forensic, smtp_tls, other
	Compression  string // none, gz, zip, other
	Bytes        int64
	ReporterOrg  string
	Records      []int // one number per report; nil when the file holds no report
	Notes        string
	Provenance   string // real, real-anon, derived, synthetic, spec-example, not-a-report
	PolicyDomain string
	ReportID     string
	DateBegin    string
	DateEnd      string
}

// RelPath is the file's path below the corpus folder.
func (e Entry) RelPath() string { return filepath.Join(e.Repo, e.Path) }

// Real reports whether the file is as a provider sent it (possibly anonymised).
func (e Entry) Real() bool { return e.Provenance == "real" || e.Provenance == "real-anon" }

// Malformed reports whether the index notes say the file cannot be understood as a report
// (broken XML, not XML at all, an XML document that is no report, an empty file). Files that
// are broken in other ways (a missing date range, say) are not flagged: callers list those.
func (e Entry) Malformed() bool {
	return e.Provenance == "not-a-report" || strings.Contains(e.Notes, "malformed XML") ||
		strings.Contains(e.Notes, "not a DMARC report") || strings.Contains(e.Notes, "payload not XML") ||
		strings.Contains(e.Notes, "empty file")
}

// ErrAbsent means the shared folder is not beside the module root.
var ErrAbsent = errors.New("corpus: ../shared/corpus not found beside the module root")

// Dir returns the corpus folder, found by walking up from the working directory to go.mod.
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			c := filepath.Join(dir, "..", "shared", "corpus")
			if _, err := os.Stat(filepath.Join(c, "INDEX.tsv")); err != nil {
				return "", ErrAbsent
			}
			return c, nil
		}
		if filepath.Dir(dir) == dir {
			return "", ErrAbsent
		}
	}
}

// Load reads INDEX.tsv. Columns are found by header name, so a reordered index still reads.
func Load(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("corpus: INDEX.tsv is empty")
	}
	col := map[string]int{}
	for i, h := range strings.Split(sc.Text(), "\t") {
		col[h] = i
	}
	var out []Entry
	for line := 2; sc.Scan(); line++ {
		f := strings.Split(sc.Text(), "\t")
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		e := Entry{SHA256: get("sha256"), Repo: get("repo"), Path: get("path"), Kind: get("kind"),
			Compression: get("compression"), ReporterOrg: get("reporter_org"), Notes: get("notes"),
			Provenance: get("provenance"), PolicyDomain: get("policy_domain"), ReportID: get("report_id"),
			DateBegin: get("date_begin"), DateEnd: get("date_end")}
		e.Bytes, _ = strconv.ParseInt(get("bytes"), 10, 64)
		if r := get("records"); r != "" {
			for _, p := range strings.Split(r, "+") {
				n, err := strconv.Atoi(p)
				if err != nil {
					return nil, fmt.Errorf("corpus: INDEX.tsv line %d: records %q: %w", line, r, err)
				}
				e.Records = append(e.Records, n)
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// ForTest returns the corpus folder and index, skipping the test with a clear message only when
// the shared folder is absent (a checkout without ../shared); any other problem fails the test.
func ForTest(tb testing.TB) (string, []Entry) {
	tb.Helper()
	dir, err := Dir()
	if errors.Is(err, ErrAbsent) {
		tb.Skip("skipping: ../shared/corpus is absent (the real-world corpus lives beside the module root)")
	}
	if err != nil {
		tb.Fatal(err)
	}
	entries, err := Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) == 0 {
		tb.Fatal("corpus: INDEX.tsv lists no files")
	}
	return dir, entries
}
