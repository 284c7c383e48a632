package dmarc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"
)

const maxWarnings = 100

// parser walks the token stream of one report by hand: encoding/xml's RawToken with our own
// tag matching and depth count avoids Unmarshal's reflection and Token's namespace bookkeeping
// (about a quarter of the time on a large report).
type parser struct {
	d   *xml.Decoder
	raw *source // the caller's bytes
	src *source // what encoding/xml reads: raw, or a source above a charset decoder
	lim Limits
	now time.Time

	stack   []xml.Name // open elements; encoding/xml does not match tags in RawToken
	ntok    int
	tbuf    []byte            // text of the current leaf element
	intern  map[string]string // repeated values (header_from, domains) share one string
	warns   []string
	dropped int // warnings beyond maxWarnings

	wrapperAttrs []xml.Attr // attributes of a stray wrapper around <feedback>, for xmlns
	ended        bool       // </feedback> has been read
	nrec         int        // <record> elements seen, skipped ones included
	sum          int64      // messages in the records kept so far
	buffered     []Record   // records read by Header before the metadata
	bufIdx       int
	pending      bool // Header stopped at a <record> start tag that Next must read
}

func newParser(src *source, lim Limits) *parser {
	p := &parser{raw: src, src: src, lim: lim.withDefaults(), now: time.Now(),
		intern: make(map[string]string)}
	p.stack = make([]xml.Name, 0, 8)
	return p
}

// start checks the first bytes and sets up encoding/xml. Strict stays on: in non-strict mode
// an undefined entity such as &lol; would be kept as text instead of failing.
func (p *parser) start() error {
	if err := p.raw.sniff(); err != nil {
		return err
	}
	p.d = xml.NewDecoder(p.raw)
	p.d.Strict = true
	p.d.CharsetReader = p.charsetReader
	return nil
}

// charsetReader is called by encoding/xml for a declared encoding other than UTF-8.
func (p *parser) charsetReader(label string, in io.Reader) (io.Reader, error) {
	if p.ntok > 0 {
		return nil, errors.New("XML declaration not at the start of the document")
	}
	if isUTF16Label(label) {
		// The declaration itself was read as ASCII, so the bytes are not UTF-16 (sniff refuses
		// real UTF-16): the label is wrong, and UTF-8 is the only reading that can work.
		p.warn("declared encoding %q, but the document is not UTF-16; read as UTF-8", clip([]byte(label)))
		return in, nil
	}
	enc, err := charset(label)
	if err != nil || enc == nil {
		return in, err
	}
	p.raw.disableCap()
	p.src = newSource(enc.NewDecoder().Reader(p.raw), p.lim.MaxTokenBytes)
	return p.src, nil
}

// token returns the next token, enforcing what RawToken leaves out (matching end tags) and
// what the package adds (depth cap, no DTD, declaration only at the start).
func (p *parser) token() (xml.Token, error) {
	tok, err := p.d.RawToken()
	p.src.resetToken()
	if err != nil {
		return nil, p.xmlError(err)
	}
	p.ntok++
	switch t := tok.(type) {
	case xml.StartElement:
		if len(p.stack) >= p.lim.MaxDepth {
			return nil, fmt.Errorf("%w: nesting deeper than %d (line %d)", ErrMalformed, p.lim.MaxDepth, p.line())
		}
		p.stack = append(p.stack, t.Name)
		p.src.skipSpace()
	case xml.EndElement:
		if len(p.stack) == 0 || p.stack[len(p.stack)-1] != t.Name {
			return nil, p.mismatch(t.Name)
		}
		p.stack = p.stack[:len(p.stack)-1]
		p.src.skipSpace()
	case xml.Directive:
		return nil, p.directiveError(t)
	case xml.ProcInst:
		if t.Target == "xml" && p.ntok > 1 {
			return nil, fmt.Errorf("%w: XML declaration not at the start of the document (line %d)",
				ErrMalformed, p.line())
		}
	}
	return tok, nil
}

// directiveError refuses every DTD construct: with no DOCTYPE there are no entity
// declarations, so neither billion laughs nor XXE can even be expressed.
func (p *parser) directiveError(d xml.Directive) error {
	if bytes.HasPrefix(bytes.ToUpper(d), []byte("DOCTYPE")) {
		return fmt.Errorf("%w: DOCTYPE not allowed (line %d)", ErrMalformed, p.line())
	}
	word := []byte{}
	if f := bytes.Fields(d); len(f) > 0 {
		word = f[0]
	}
	return fmt.Errorf("%w: markup declaration <!%s not allowed (line %d)", ErrMalformed, clip(word), p.line())
}

func (p *parser) mismatch(got xml.Name) error {
	if len(p.stack) == 0 {
		return fmt.Errorf("%w: line %d: unexpected end tag </%s>", ErrMalformed, p.line(), qname(got))
	}
	return fmt.Errorf("%w: line %d: element <%s> closed by </%s>", ErrMalformed, p.line(),
		qname(p.stack[len(p.stack)-1]), qname(got))
}

func (p *parser) xmlError(err error) error {
	var se *xml.SyntaxError
	var re readError
	switch {
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, errTokenTooLong):
		return fmt.Errorf("%w: an XML token (text, tag or comment) exceeds %d bytes (line %d)",
			ErrMalformed, p.lim.MaxTokenBytes, p.line())
	case errors.As(err, &re):
		return fmt.Errorf("read report: %w", re.err)
	case errors.As(err, &se):
		return fmt.Errorf("%w: XML syntax error on line %d: %s", ErrMalformed, se.Line+p.droppedLines(), se.Msg)
	}
	return fmt.Errorf("%w: %v (line %d)", ErrMalformed, err, p.line())
}

// line is the input line of the decoder's position, counting the newlines the source dropped.
func (p *parser) line() int {
	l, _ := p.d.InputPos()
	return l + p.droppedLines()
}

func (p *parser) droppedLines() int {
	if p.src != p.raw {
		return p.raw.nl + p.src.nl
	}
	return p.raw.nl
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// child returns the next child element of the innermost open element, or ok == false once
// that element has ended. Text, comments and processing instructions between children are
// ignored.
func (p *parser) child() (el xml.StartElement, ok bool, err error) {
	for {
		tok, err := p.token()
		if err != nil {
			return el, false, p.eofInside(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, true, nil
		case xml.EndElement:
			return el, false, nil
		}
	}
}

// eofInside turns an end of input inside an element into the truncation it is.
func (p *parser) eofInside(err error) error {
	if err != io.EOF {
		return err
	}
	where := "the document"
	if len(p.stack) > 0 {
		where = "<" + qname(p.stack[len(p.stack)-1]) + ">"
	}
	return fmt.Errorf("%w: unexpected end of input inside %s at line %d (truncated?)", ErrMalformed,
		where, p.line())
}

// skip consumes the rest of the innermost open element. It loops instead of recursing, so
// nesting costs no stack; the depth cap in token still applies.
func (p *parser) skip() error {
	for depth := 1; depth > 0; {
		tok, err := p.token()
		if err != nil {
			return p.eofInside(err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// text reads the content of the innermost open element, trimmed. Child elements of a leaf
// are ignored. The result is only valid until the next call.
func (p *parser) text() ([]byte, error) {
	p.tbuf = p.tbuf[:0]
	for {
		tok, err := p.token()
		if err != nil {
			return nil, p.eofInside(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			p.tbuf = append(p.tbuf, t...)
		case xml.StartElement:
			if err := p.skip(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			return trimSpace(p.tbuf), nil
		}
	}
}

// str converts a value, sharing strings that repeat across records.
func (p *parser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 64 {
		return string(b)
	}
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.intern) < 4096 {
		p.intern[s] = s
	}
	return s
}

func (p *parser) textString() (string, error) {
	b, err := p.text()
	return p.str(b), err
}

// enum reads an enumerated value, warning about (but keeping) values outside the set.
func (p *parser) enum(what string, set []string) (string, error) {
	b, err := p.text()
	if err != nil {
		return "", err
	}
	v, ok := enumValue(b, set)
	if !ok {
		p.warn("unknown %s %q", what, clip(b))
	}
	return v, nil
}

func (p *parser) warn(format string, args ...any) {
	if len(p.warns) >= maxWarnings {
		p.dropped++
		return
	}
	p.warns = append(p.warns, fmt.Sprintf(format, args...))
}

func (p *parser) warnings() []string {
	out := append([]string(nil), p.warns...)
	if p.dropped > 0 {
		out = append(out, fmt.Sprintf("%d more warnings not shown", p.dropped))
	}
	return out
}
