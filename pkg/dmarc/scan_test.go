package dmarc

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTokenCapExact pins what MaxTokenBytes counts: the raw bytes of one token, from its first
// byte to its last, for every kind of token. A token of exactly the cap is read; one byte more
// is refused, whatever the sizes of the reads.
func TestTokenCapExact(t *testing.T) {
	t.Parallel()
	const limit = 100
	x := func(n int) string { return strings.Repeat("x", n) }
	base := report(record("192.0.2.1", "1"))
	at := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("%q not in the report", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	tests := []struct {
		name string
		doc  func(n int) string // a report with one token of n bytes
	}{
		{"text", func(n int) string { return at(">Example Org<", ">"+x(n)+"<") }},
		{"start tag with an attribute", func(n int) string {
			return at("<org_name>", `<org_name a="`+x(n-len(`<org_name a="">`))+`">`)
		}},
		{"end tag", func(n int) string {
			return at("</org_name>", "</org_name"+strings.Repeat(" ", n-len("</org_name>"))+">")
		}},
		{"empty element", func(n int) string {
			return at("<org_name>Example Org</org_name>", "<org_name"+strings.Repeat(" ", n-len("<org_name/>"))+"/>")
		}},
		{"comment", func(n int) string { return at("<org_name>", "<!--"+x(n-7)+"--><org_name>") }},
		{"processing instruction", func(n int) string { return at("<org_name>", "<?pi "+x(n-7)+"?><org_name>") }},
		{"CDATA section", func(n int) string {
			return at(">Example Org<", "><![CDATA["+x(n-12)+"]]><")
		}},
		{"text with references", func(n int) string {
			return at(">Example Org<", ">&amp;&#65;"+x(n-len("&amp;&#65;"))+"<")
		}},
		{"whitespace between tags", func(n int) string {
			return at("</begin><end>", "</begin>"+strings.Repeat(" \n", n/2)+strings.Repeat(" ", n%2)+"<end>")
		}},
		{"XML declaration", func(n int) string {
			decl := `<?xml version="1.0" encoding="UTF-8"?>`
			return strings.Replace(base, decl, decl[:len(decl)-2]+strings.Repeat(" ", n-len(decl))+"?>", 1)
		}},
	}
	lim := Limits{MaxTokenBytes: limit}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, read := range []int{0, 1, 7, 64} {
				if _, err := parseWithReads([]byte(tc.doc(limit)), lim, read); err != nil {
					t.Errorf("%d-byte reads: a token of exactly %d bytes: %v", read, limit, err)
				}
				_, err := parseWithReads([]byte(tc.doc(limit+1)), lim, read)
				wantErr(t, err, ErrMalformed, "exceeds 100 bytes")
			}
		})
	}
}

// parseWithReads parses doc from a slice (read == 0) or from a reader returning at most read
// bytes per call.
func parseWithReads(doc []byte, lim Limits, read int) (*Report, error) {
	if read == 0 {
		return ParseBytes(doc, lim)
	}
	return Parse(&chunkReader{r: bytes.NewReader(doc), n: read}, lim)
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestReadSizesAgree parses every fuzz seed from a slice and from readers of several read
// sizes: the results, errors included, must be identical, since the scanner sees the same bytes
// of every token however they arrive.
func TestReadSizesAgree(t *testing.T) {
	t.Parallel()
	var names []string
	for _, dir := range []string{"FuzzParse", "FuzzTokenizerDifferential"} {
		m, err := filepath.Glob(filepath.Join("testdata/fuzz", dir, "*"))
		if err != nil || len(m) == 0 {
			t.Fatalf("no seeds in %s: %v", dir, err)
		}
		names = append(names, m...)
	}
	for _, name := range names {
		doc := readFuzzSeed(t, name)
		for _, lim := range []Limits{{}, {MaxTokenBytes: 40}} {
			want, wantE := ParseBytes(doc, lim)
			for _, read := range []int{1, 2, 3, 5, 16, 1000} {
				got, err := parseWithReads(doc, lim, read)
				if (err == nil) != (wantE == nil) || err != nil && err.Error() != wantE.Error() {
					t.Fatalf("%s, limits %+v, %d-byte reads: error %v, from a slice %v", name, lim, read, err, wantE)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s, limits %+v, %d-byte reads: report differs from the slice's", name, lim, read)
				}
			}
		}
	}
}

// TestSlowReaderLargeToken feeds tokens close to the cap one byte per read: rescanning a token
// each time a byte arrives would take minutes; the scanner asks for twice as much each time.
func TestSlowReaderLargeToken(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("y", 1<<20-100)
	base := report(record("192.0.2.1", "1"))
	for _, doc := range []string{
		strings.Replace(base, "<org_name>", "<!--"+big+"--><org_name>", 1),
		strings.Replace(base, "<org_name>", `<org_name a="`+big+`">`, 1),
		strings.Replace(base, "Example Org", big, 1),
		strings.Replace(base, "<org_name>", `<!DOCTYPE x [`+big+`]>`, 1),
	} {
		start := time.Now()
		_, err := parseWithReads([]byte(doc), Limits{}, 1)
		want, wantE := ParseBytes([]byte(doc), Limits{})
		if (err == nil) != (wantE == nil) || err != nil && err.Error() != wantE.Error() {
			t.Errorf("1-byte reads: %v; from a slice: %v (%v)", err, wantE, want != nil)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("a 1 MiB token in 1-byte reads took %v", d)
		}
	}
}

// TestScannerTokens checks the tokens themselves on small inputs: names, decoded text and
// attribute values, and the end of <x/>.
func TestScannerTokens(t *testing.T) {
	t.Parallel()
	doc := "<a:b x='1&amp;2' y=\"&#x41;\r\n\">t&lt;\r\nu<![CDATA[<&]]><c/><!-- k --><?p d?></a:b>"
	sc := &scanner{src: newSourceBytes([]byte(doc)), max: 1 << 20}
	var got []string
	for {
		kind, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case tokStart:
			s := "start " + string(sc.name)
			for _, a := range sc.attrs {
				s += " " + string(sc.attrBuf[a.name[0]:a.name[1]]) + "=" + string(sc.attrBuf[a.value[0]:a.value[1]])
			}
			got = append(got, s)
		case tokEnd:
			got = append(got, "end "+string(sc.name))
		case tokText:
			got = append(got, "text "+string(sc.text))
		case tokComment:
			got = append(got, "comment")
		case tokPI:
			got = append(got, "pi "+string(sc.piTarget)+" "+string(sc.piData))
		}
	}
	want := []string{"start a:b x=1&2 y=A\n", "text t<\nu", "text <&", "start c", "end ", "comment", "pi p d", "end a:b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens\n%q\nwant\n%q", got, want)
	}
}
