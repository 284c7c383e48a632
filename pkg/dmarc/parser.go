package dmarc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

const maxWarnings = 100

// parser walks the token stream of one report by hand, matching tags and counting depth over
// the scanner's raw tokens.
type parser struct {
	sc  scanner
	raw *source // the caller's bytes; a declared charset puts a decoder between them and sc
	lim Limits
	now time.Time

	names   []byte      // the qualified names of the open elements, one after the other
	stack   []openElem  // open elements
	stack0  [8]openElem // stack's first backing array
	ntok    int
	tbuf    []byte            // text of the current leaf element
	intern  map[string]string // repeated values (header_from, domains) share one string
	warns   []string
	dropped int // warnings beyond maxWarnings

	wrapperAttrs []xmlAttr // attributes of a stray wrapper around <feedback>, for xmlns
	ended        bool      // </feedback> has been read
	nrec         int       // <record> elements seen, skipped ones included
	sum          int64     // messages in the records kept so far
	buffered     []Record  // records read by Header before the metadata
	bufIdx       int
	pending      bool // Header stopped at a <record> start tag that Next must read
}

// openElem is an open element: its qualified name is names[start:end], the local part starts
// at local.
type openElem struct{ start, local, end int }

// xmlAttr is an attribute of the root or the <feedback> element, kept to find the namespace.
type xmlAttr struct{ name, value string } // name as written, prefix included

// startTag is the root or the <feedback> element, kept beyond the next token.
type startTag struct {
	name  string // as written, prefix included
	attrs []xmlAttr
}

func newParser(src *source, lim Limits) *parser {
	lim = lim.withDefaults()
	p := &parser{sc: scanner{src: src, max: lim.MaxTokenBytes}, raw: src, lim: lim, now: time.Now(),
		intern: make(map[string]string)}
	p.stack = p.stack0[:0]
	// One allocation for what most reports need of both buffers; either grows on its own.
	buf := make([]byte, 256)
	p.names, p.tbuf = buf[:0:128], buf[128:128]
	return p
}

// start checks the first bytes.
func (p *parser) start() error {
	return p.raw.sniff()
}

// token returns the next token, enforcing what the scanner leaves out (matching end tags) and
// what the package adds (depth cap, no DTD, declaration only at the start).
func (p *parser) token() (tokKind, error) {
	kind, err := p.sc.next()
	if err != nil {
		return 0, err
	}
	p.ntok++
	switch kind {
	case tokStart:
		if len(p.stack) >= p.lim.MaxDepth {
			return 0, fmt.Errorf("%w: nesting deeper than %d (line %d)", ErrMalformed, p.lim.MaxDepth, p.line())
		}
		start := len(p.names)
		p.names = append(p.names, p.sc.name...)
		p.stack = append(p.stack, openElem{start, start + p.sc.local, len(p.names)})
		p.sc.skipSpace()
	case tokEnd:
		if p.sc.name != nil { // nil: the end of <x/>, which matches by construction
			if len(p.stack) == 0 || !bytes.Equal(p.top(), p.sc.name) {
				return 0, p.mismatch(p.sc.name)
			}
		}
		top := p.stack[len(p.stack)-1]
		p.names = p.names[:top.start]
		p.stack = p.stack[:len(p.stack)-1]
		p.sc.skipSpace()
	case tokDirective:
		return 0, p.directiveError(p.sc.directive)
	case tokPI:
		if string(p.sc.piTarget) == "xml" {
			return kind, p.declaration(p.sc.piData)
		}
	}
	return kind, nil
}

// declaration applies an XML declaration: version 1.0 only; a declared encoding other than
// UTF-8 puts a charset decoder between the input and the scanner. Only the first token may be
// a declaration. The checks and messages are encoding/xml's, in its order.
func (p *parser) declaration(content []byte) error {
	if ver := declParam("version", content); ver != "" && ver != "1.0" {
		return fmt.Errorf("%w: xml: unsupported version %q; only version 1.0 is supported (line %d)",
			ErrMalformed, ver, p.line())
	}
	if enc := declParam("encoding", content); enc != "" && !strings.EqualFold(enc, "utf-8") {
		if err := p.switchCharset(enc); err != nil {
			return fmt.Errorf("%w: xml: opening charset %q: %v (line %d)", ErrMalformed, enc, err, p.line())
		}
	}
	if p.ntok > 1 {
		return fmt.Errorf("%w: XML declaration not at the start of the document (line %d)",
			ErrMalformed, p.line())
	}
	return nil
}

// switchCharset sets up the decoding of a declared encoding other than UTF-8.
func (p *parser) switchCharset(label string) error {
	if p.ntok > 1 {
		return fmt.Errorf("XML declaration not at the start of the document")
	}
	if isUTF16Label(label) {
		// The declaration itself was read as ASCII, so the bytes are not UTF-16 (sniff refuses
		// real UTF-16): the label is wrong, and UTF-8 is the only reading that can work.
		p.warn("declared encoding %q, but the document is not UTF-16; read as UTF-8", clip([]byte(label)))
		return nil
	}
	enc, err := charset(label)
	if err != nil || enc == nil {
		return err
	}
	p.sc.switchSource(newSource(enc.NewDecoder().Reader(p.raw)))
	return nil
}

// directiveError refuses every DTD construct: with no DOCTYPE there are no entity
// declarations, so neither billion laughs nor XXE can even be expressed.
func (p *parser) directiveError(d []byte) error {
	if bytes.HasPrefix(bytes.ToUpper(d), []byte("DOCTYPE")) {
		return fmt.Errorf("%w: DOCTYPE not allowed (line %d)", ErrMalformed, p.line())
	}
	word := []byte{}
	if f := bytes.Fields(d); len(f) > 0 {
		word = f[0]
	}
	return fmt.Errorf("%w: markup declaration <!%s not allowed (line %d)", ErrMalformed, clip(word), p.line())
}

// top is the qualified name of the innermost open element.
func (p *parser) top() []byte {
	e := p.stack[len(p.stack)-1]
	return p.names[e.start:e.end]
}

// topLocal is the local name of the innermost open element, valid until it ends.
func (p *parser) topLocal() []byte {
	e := p.stack[len(p.stack)-1]
	return p.names[e.local:e.end]
}

func (p *parser) mismatch(got []byte) error {
	if len(p.stack) == 0 {
		return fmt.Errorf("%w: line %d: unexpected end tag </%s>", ErrMalformed, p.line(), got)
	}
	return fmt.Errorf("%w: line %d: element <%s> closed by </%s>", ErrMalformed, p.line(), p.top(), got)
}

// line is the input line of the scanner's position.
func (p *parser) line() int {
	return p.sc.line(p.sc.src.pos)
}

// child returns the local name of the next child element of the innermost open element, or
// ok == false once that element has ended. Text, comments and processing instructions between
// children are ignored. The name is valid until the element ends.
func (p *parser) child() (local []byte, ok bool, err error) {
	for {
		kind, err := p.token()
		if err != nil {
			return nil, false, p.eofInside(err)
		}
		switch kind {
		case tokStart:
			return p.topLocal(), true, nil
		case tokEnd:
			return nil, false, nil
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
		where = "<" + string(p.top()) + ">"
	}
	return fmt.Errorf("%w: unexpected end of input inside %s at line %d (truncated?)", ErrMalformed,
		where, p.line())
}

// skip consumes the rest of the innermost open element. It loops instead of recursing, so
// nesting costs no stack; the depth cap in token still applies.
func (p *parser) skip() error {
	for depth := 1; depth > 0; {
		kind, err := p.token()
		if err != nil {
			return p.eofInside(err)
		}
		switch kind {
		case tokStart:
			depth++
		case tokEnd:
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
		kind, err := p.token()
		if err != nil {
			return nil, p.eofInside(err)
		}
		switch kind {
		case tokText:
			p.tbuf = append(p.tbuf, p.sc.text...)
		case tokStart:
			if err := p.skip(); err != nil {
				return nil, err
			}
		case tokEnd:
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
