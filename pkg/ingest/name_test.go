package ingest

import (
	"strings"
	"testing"
)

// Issue 18 (and SECURITY-CASES A.3): a stored file name is a label people read, so it loses
// directories, control characters and invisible formatting (bidi overrides and isolates,
// zero-width characters, line separators), and stays valid UTF-8 within 255 bytes.
func TestCleanName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"report.xml.gz", "report.xml.gz"},
		{"../../etc/passwd", "passwd"},
		{`C:\reports\google.xml`, "google.xml"},
		{"invoice\u202Elmx.exe", "invoicelmx.exe"},
		{"a\u2066b\u2067c\u2068d\u2069e\u202Af\u202Bg\u202Ch\u202Di\u200Ej\u200Fk", "abcdefghijk"},
		{"zero\u200Bwidth\u200D\uFEFF", "zerowidth"},
		{"line\u2028break\u2029para", "linebreakpara"},
		{"nul\x00tab\tcr\rlf\ndel\x7f", "nultabcrlfdel"},
		{"bad\xffbytes", "badbytes"},
		{"  spaced.xml  ", "spaced.xml"},
		{"Отчёт 2024 — 東京.xml", "Отчёт 2024 — 東京.xml"},
		{strings.Repeat("é", 200), strings.Repeat("é", 127)},
	} {
		if got := CleanName(c.in); got != c.want {
			t.Errorf("CleanName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
