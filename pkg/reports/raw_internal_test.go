package reports

import "testing"

// safeFilename keeps a download name to letters, digits, dot, dash and underscore, whatever a
// sender named the file (stored names are already cleaned by the pipeline; this is the last
// line before a header and a user's disk).
func TestSafeFilename(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"report.xml.gz", "report.xml.gz"},
		{"../../etc/passwd", "passwd"},
		{`C:\Windows\system32\evil.xml`, "evil.xml"},
		{"a\"b\r\nContent-Type: text/html.xml", "html.xml"}, // "/" is a path separator: the last element stays,
		{".htaccess", "htaccess"},
		{"évil.xml", "vil.xml"},
		{"a\"b\r\nX: 1.xml", "a_b__X__1.xml"},
		{"", "ingest-7"},
		{"....", "ingest-7"},
		{"/", "ingest-7"},
		{"名前", "ingest-7"},
		{string(make([]byte, 300)) + "x.xml", "x.xml"}, // NULs become _, leading ones are dropped
	}
	for _, c := range cases {
		if got := safeFilename(c.in, 7); got != c.want {
			t.Errorf("safeFilename(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
