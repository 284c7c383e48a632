package dmarc

// This file is the parser as it was before the hand-written tokenizer (scan.go), at commit
// 358c0d4: input.go, parser.go, feedback.go, record.go and decoder.go over encoding/xml's
// RawToken, unchanged but for their package-level identifiers, which carry a "legacy" prefix
// (values.go and report.go, which the tokenizer did not change, are shared).
// It is compiled only into the tests, where FuzzTokenizerDifferential and
// TestTokenizerDifferentialCorpus parse the same input with both parsers and require the same
// outcome. It is the reference: do not change it to match the new parser.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// ---- from input.go ----
// errTokenTooLong is returned by source when a token outgrows MaxTokenBytes; the parser turns
// it into an ErrMalformed naming the limit.
var errLegacyTokenTooLong = errors.New("token too long")

// readError marks an error from the caller's reader, so it is not mistaken for bad XML.
type legacyReadError struct{ err error }

func (e legacyReadError) Error() string { return e.err.Error() }
func (e legacyReadError) Unwrap() error { return e.err }

const legacySourceBufSize = 16 << 10

// source feeds encoding/xml. Because it implements io.ByteReader, xml.Decoder reads it one byte
// at a time with no buffering of its own, and reads at most one byte past the token it returns.
// That makes a per-token size cap exact: after each token the parser calls resetToken, and the
// source refuses to hand out more than max bytes before the next call.
type legacySource struct {
	r        io.Reader // nil when reading a byte slice
	buf      []byte
	pos, n   int   // next byte to hand out; end of valid data
	lim      int   // bytes before lim may be handed out: min(n, tokStart+max)
	base     int64 // input offset of buf[0]
	tokStart int64 // input offset where the current token began
	max      int   // MaxTokenBytes; 0 disables the cap (raw bytes under a charset decoder)
	err      error // sticky error from r (io.EOF included)
	nl       int   // newlines dropped (leading and between tags), to correct line numbers
}

func newLegacySource(r io.Reader, tokenCap int) *legacySource {
	return &legacySource{r: r, buf: make([]byte, legacySourceBufSize), max: tokenCap}
}

func newLegacySourceBytes(b []byte, tokenCap int) *legacySource {
	s := &legacySource{buf: b, n: len(b), max: tokenCap, err: io.EOF}
	s.resetToken()
	return s
}

// resetToken starts a new token at the current position.
func (s *legacySource) resetToken() {
	s.tokStart = s.base + int64(s.pos)
	s.setLim()
}

func (s *legacySource) setLim() {
	s.lim = s.n
	if s.max > 0 {
		if end := s.tokStart + int64(s.max) - s.base; end < int64(s.n) {
			s.lim = int(max(end, 0))
		}
	}
}

// ReadByte is called by encoding/xml for every input byte: keep the common case short.
func (s *legacySource) ReadByte() (byte, error) {
	if s.pos < s.lim {
		b := s.buf[s.pos]
		s.pos++
		return b, nil
	}
	return s.slowByte()
}

func (s *legacySource) slowByte() (byte, error) {
	for s.pos >= s.lim {
		if s.pos < s.n {
			return 0, errLegacyTokenTooLong
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	return s.ReadByte()
}

// fill replaces the consumed buffer with fresh input.
func (s *legacySource) fill() error {
	if s.r == nil || s.err != nil {
		return s.endErr()
	}
	s.base += int64(s.n)
	s.pos = 0
	s.n = s.readSome(s.buf)
	s.setLim()
	if s.n == 0 {
		return s.endErr()
	}
	return nil
}

// readSome reads at least one byte or records an error, giving up on a reader that keeps
// returning nothing (as bufio does).
func (s *legacySource) readSome(p []byte) int {
	for range 100 {
		m, err := s.r.Read(p)
		if err != nil {
			s.err = err
		}
		if m > 0 || err != nil {
			return m
		}
	}
	s.err = io.ErrNoProgress
	return 0
}

func (s *legacySource) endErr() error {
	if s.err == nil || s.err == io.EOF {
		return io.EOF
	}
	return legacyReadError{s.err}
}

// disableCap is called when a charset decoder takes over reading this source: the cap then
// applies to the decoded bytes, in the source above the decoder.
func (s *legacySource) disableCap() {
	s.max = 0
	s.setLim()
}

// skipSpace drops a whitespace-only run between a tag and the next '<': indentation is most
// of the bytes of a pretty-printed report, and encoding/xml spends as long on it as on real
// content. The parser calls it right after a start or end tag, when encoding/xml has read
// exactly up to the '>', so text, CDATA and comments are never touched. A run longer than the
// buffer is left to encoding/xml.
func (s *legacySource) skipSpace() {
	nl := 0
	for k := 0; ; k++ {
		if s.pos+k >= s.lim && (!s.readAhead() || s.pos+k >= s.lim) {
			return
		}
		switch s.buf[s.pos+k] {
		case '\n':
			nl++
		case ' ', '\t', '\r':
		case '<':
			s.pos += k
			s.nl += nl
			return
		default:
			return
		}
	}
}

// readAhead moves the unread bytes to the front of the buffer and reads more behind them;
// false when nothing more can be buffered.
func (s *legacySource) readAhead() bool {
	if s.r == nil || s.err != nil {
		return false
	}
	if s.pos > 0 {
		s.base += int64(s.pos)
		s.n = copy(s.buf, s.buf[s.pos:s.n])
		s.pos = 0
	}
	if s.n == len(s.buf) {
		return false
	}
	s.n += s.readSome(s.buf[s.n:])
	s.setLim()
	return true
}

// Read serves the charset decoder that sits on top of this source once a document declares a
// non-UTF-8 encoding; from then on the token cap is enforced by the source above the decoder.
func (s *legacySource) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	k := copy(p, s.buf[s.pos:s.n])
	s.pos += k
	return k, nil
}

// peek returns up to k unread bytes without consuming them.
func (s *legacySource) peek(k int) ([]byte, error) {
	for s.n-s.pos < k && s.readAhead() {
	}
	if s.err != nil && s.err != io.EOF && s.n-s.pos < k {
		return s.buf[s.pos:s.n], legacyReadError{s.err}
	}
	return s.buf[s.pos:min(s.n, s.pos+k)], nil
}

// sniff checks how the input starts, before any XML is parsed: a UTF-8 byte order mark and
// leading whitespace are skipped (one generator writes " <?xml"), UTF-16 is refused because
// encoding/xml reads only ASCII-compatible encodings, and anything not starting with '<' is not
// XML at all (Yahoo sends the word "unused").
func (s *legacySource) sniff() error {
	head, err := s.peek(4)
	if err != nil {
		return err
	}
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		s.pos += 3
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}), bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return fmt.Errorf("%w: UTF-16 not supported (byte order mark % X)", ErrMalformed, head[:2])
	case bytes.HasPrefix(head, []byte{0, '<'}), bytes.HasPrefix(head, []byte{'<', 0}):
		return fmt.Errorf("%w: UTF-16 not supported (no byte order mark)", ErrMalformed)
	}
	for {
		head, err := s.peek(1)
		if err != nil {
			return err
		}
		if len(head) == 0 {
			return fmt.Errorf("%w: empty input", ErrNotReport)
		}
		switch head[0] {
		case '\n':
			s.nl++
			s.pos++
		case ' ', '\t', '\r':
			s.pos++
		case '<':
			s.resetToken()
			return nil
		default:
			text, _ := s.peek(24)
			return fmt.Errorf("%w: not XML, input starts with %q", ErrNotReport, text)
		}
	}
}

func legacyIsUTF16Label(label string) bool {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-16", "utf-16le", "utf-16be", "utf16", "ucs-2":
		return true
	}
	return false
}

// charset returns the decoder for a declared encoding, nil meaning the bytes are UTF-8 already.
// iso-8859-1, latin1 and us-ascii decode as windows-1252, as the WHATWG encoding standard and
// every browser do: reporters that declare them often send 0x80-0x9F quotes.
func legacyCharset(label string) (encoding.Encoding, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8":
		return nil, nil
	case "windows-1252", "cp1252", "x-cp1252", "iso-8859-1", "iso8859-1", "iso_8859-1",
		"latin1", "l1", "us-ascii", "ascii":
		return charmap.Windows1252, nil
	case "iso-8859-15", "iso8859-15", "latin-9", "latin9":
		return charmap.ISO8859_15, nil
	}
	return nil, fmt.Errorf("unsupported charset %q", label)
}

// ---- from parser.go ----
const legacyMaxWarnings = 100

// parser walks the token stream of one report by hand: encoding/xml's RawToken with our own
// tag matching and depth count avoids Unmarshal's reflection and Token's namespace bookkeeping
// (about a quarter of the time on a large report).
type legacyParser struct {
	d   *xml.Decoder
	raw *legacySource // the caller's bytes
	src *legacySource // what encoding/xml reads: raw, or a source above a charset decoder
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

func newLegacyParser(src *legacySource, lim Limits) *legacyParser {
	p := &legacyParser{raw: src, src: src, lim: lim.withDefaults(), now: time.Now(),
		intern: make(map[string]string)}
	p.stack = make([]xml.Name, 0, 8)
	return p
}

// start checks the first bytes and sets up encoding/xml. Strict stays on: in non-strict mode
// an undefined entity such as &lol; would be kept as text instead of failing.
func (p *legacyParser) start() error {
	if err := p.raw.sniff(); err != nil {
		return err
	}
	p.d = xml.NewDecoder(p.raw)
	p.d.Strict = true
	p.d.CharsetReader = p.charsetReader
	return nil
}

// charsetReader is called by encoding/xml for a declared encoding other than UTF-8.
func (p *legacyParser) charsetReader(label string, in io.Reader) (io.Reader, error) {
	if p.ntok > 0 {
		return nil, errors.New("XML declaration not at the start of the document")
	}
	if legacyIsUTF16Label(label) {
		// The declaration itself was read as ASCII, so the bytes are not UTF-16 (sniff refuses
		// real UTF-16): the label is wrong, and UTF-8 is the only reading that can work.
		p.warn("declared encoding %q, but the document is not UTF-16; read as UTF-8", clip([]byte(label)))
		return in, nil
	}
	enc, err := legacyCharset(label)
	if err != nil || enc == nil {
		return in, err
	}
	p.raw.disableCap()
	p.src = newLegacySource(enc.NewDecoder().Reader(p.raw), p.lim.MaxTokenBytes)
	return p.src, nil
}

// token returns the next token, enforcing what RawToken leaves out (matching end tags) and
// what the package adds (depth cap, no DTD, declaration only at the start).
func (p *legacyParser) token() (xml.Token, error) {
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
func (p *legacyParser) directiveError(d xml.Directive) error {
	if bytes.HasPrefix(bytes.ToUpper(d), []byte("DOCTYPE")) {
		return fmt.Errorf("%w: DOCTYPE not allowed (line %d)", ErrMalformed, p.line())
	}
	word := []byte{}
	if f := bytes.Fields(d); len(f) > 0 {
		word = f[0]
	}
	return fmt.Errorf("%w: markup declaration <!%s not allowed (line %d)", ErrMalformed, clip(word), p.line())
}

func (p *legacyParser) mismatch(got xml.Name) error {
	if len(p.stack) == 0 {
		return fmt.Errorf("%w: line %d: unexpected end tag </%s>", ErrMalformed, p.line(), legacyQname(got))
	}
	return fmt.Errorf("%w: line %d: element <%s> closed by </%s>", ErrMalformed, p.line(),
		legacyQname(p.stack[len(p.stack)-1]), legacyQname(got))
}

func (p *legacyParser) xmlError(err error) error {
	var se *xml.SyntaxError
	var re legacyReadError
	switch {
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, errLegacyTokenTooLong):
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
func (p *legacyParser) line() int {
	l, _ := p.d.InputPos()
	return l + p.droppedLines()
}

func (p *legacyParser) droppedLines() int {
	if p.src != p.raw {
		return p.raw.nl + p.src.nl
	}
	return p.raw.nl
}

func legacyQname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// child returns the next child element of the innermost open element, or ok == false once
// that element has ended. Text, comments and processing instructions between children are
// ignored.
func (p *legacyParser) child() (el xml.StartElement, ok bool, err error) {
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
func (p *legacyParser) eofInside(err error) error {
	if err != io.EOF {
		return err
	}
	where := "the document"
	if len(p.stack) > 0 {
		where = "<" + legacyQname(p.stack[len(p.stack)-1]) + ">"
	}
	return fmt.Errorf("%w: unexpected end of input inside %s at line %d (truncated?)", ErrMalformed,
		where, p.line())
}

// skip consumes the rest of the innermost open element. It loops instead of recursing, so
// nesting costs no stack; the depth cap in token still applies.
func (p *legacyParser) skip() error {
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
func (p *legacyParser) text() ([]byte, error) {
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
func (p *legacyParser) str(b []byte) string {
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

func (p *legacyParser) textString() (string, error) {
	b, err := p.text()
	return p.str(b), err
}

// enum reads an enumerated value, warning about (but keeping) values outside the set.
func (p *legacyParser) enum(what string, set []string) (string, error) {
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

func (p *legacyParser) warn(format string, args ...any) {
	if len(p.warns) >= legacyMaxWarnings {
		p.dropped++
		return
	}
	p.warns = append(p.warns, fmt.Sprintf(format, args...))
}

func (p *legacyParser) warnings() []string {
	out := append([]string(nil), p.warns...)
	if p.dropped > 0 {
		out = append(out, fmt.Sprintf("%d more warnings not shown", p.dropped))
	}
	return out
}

// ---- from feedback.go ----
// meta collects what validation needs after report_metadata and policy_published are read.
type legacyMeta struct {
	seenMeta, seenPolicy bool
	begin, end           string
	seenBegin, seenEnd   bool
}

// header reads the feedback element up to the first record that follows both report_metadata
// and policy_published, then validates what it found. The schema puts records last
// (RFC 7489 Appendix C), but records that come earlier are read and buffered for next.
func (p *legacyParser) header() (*Report, error) {
	if err := p.start(); err != nil {
		return nil, err
	}
	fb, err := p.findFeedback()
	if err != nil {
		return nil, err
	}
	rep := &Report{Namespace: legacyNamespace(fb, p.wrapperAttrs)}
	var m legacyMeta
	for !p.ended && !p.pending {
		if err := p.feedbackChild(rep, &m); err != nil {
			return nil, err
		}
	}
	if err := p.validate(rep, &m); err != nil {
		return nil, err
	}
	rep.Warnings = p.warnings()
	return rep, nil
}

// feedbackChild reads one child of <feedback> during header.
func (p *legacyParser) feedbackChild(rep *Report, m *legacyMeta) error {
	el, ok, err := p.child()
	if err != nil {
		return err
	}
	if !ok {
		p.ended = true
		return nil
	}
	switch el.Name.Local {
	case "report_metadata":
		m.seenMeta = true
		return p.metadata(rep, m)
	case "policy_published":
		m.seenPolicy = true
		return p.policy(&rep.Policy)
	case "version":
		rep.Version, err = p.textString()
	case "generator": // RFC 9990 puts it in report_metadata; accepted here too
		rep.Generator, err = p.textString()
	case "record":
		if m.seenMeta && m.seenPolicy {
			p.pending = true
			return nil
		}
		rec, ok, err := p.record()
		if ok {
			p.buffered = append(p.buffered, rec)
		}
		return err
	default:
		return p.skip()
	}
	return err
}

// findFeedback reads up to the <feedback> start tag: the root, or the first child of a stray
// wrapper root (one reporter wraps the report in an unclosed <xs:schema>).
func (p *legacyParser) findFeedback() (xml.StartElement, error) {
	root, ok, err := p.firstElement()
	switch {
	case err == io.EOF:
		return root, fmt.Errorf("%w: no root element", ErrNotReport)
	case err != nil:
		return root, err
	case !ok:
		return root, fmt.Errorf("%w: text outside the root element", ErrNotReport)
	case root.Name.Local == "feedback":
		return root, nil
	}
	child, ok, err := p.firstElement()
	if err != nil && err != io.EOF {
		return root, err
	}
	if ok && child.Name.Local == "feedback" {
		p.wrapperAttrs = root.Attr
		return child, nil
	}
	return root, fmt.Errorf("%w: expected <feedback>, found <%s>", ErrNotReport, legacyQname(root.Name))
}

// firstElement reads up to the next start tag; ok is false when text or an end tag comes
// first. Whitespace, comments and processing instructions are fine anywhere.
func (p *legacyParser) firstElement() (el xml.StartElement, ok bool, err error) {
	for {
		tok, err := p.token()
		if err != nil {
			return el, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, true, nil
		case xml.EndElement:
			return el, false, nil
		case xml.CharData:
			if len(trimSpace(t)) > 0 {
				return el, false, nil
			}
		}
	}
}

// namespace is the namespace URI of the element's prefix, looked up on the element itself and
// then on the wrapper (the only ancestor a report can have).
func legacyNamespace(el xml.StartElement, outer []xml.Attr) string {
	for _, attrs := range [][]xml.Attr{el.Attr, outer} {
		for _, a := range attrs {
			if el.Name.Space == "" && a.Name.Space == "" && a.Name.Local == "xmlns" ||
				el.Name.Space != "" && a.Name.Space == "xmlns" && a.Name.Local == el.Name.Space {
				return a.Value
			}
		}
	}
	return ""
}

// trailing checks that nothing but whitespace, comments and processing instructions follows
// </feedback>. In the wrapper case the wrapper's end tag may follow, or the input may simply
// stop, as the reporter that sends the unclosed wrapper does.
func (p *legacyParser) trailing() error {
	for {
		tok, err := p.token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("trailing data after </feedback>: %w", err)
		}
		switch t := tok.(type) {
		case xml.EndElement: // the wrapper's: token() has matched it against the stack
			continue
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		case xml.Comment, xml.ProcInst:
			continue
		}
		return fmt.Errorf("%w: trailing data after </feedback> (line %d)", ErrMalformed, p.line())
	}
}

// next returns the next valid record, or io.EOF after </feedback> and the trailing check.
func (p *legacyParser) next() (Record, error) {
	for {
		switch {
		case p.bufIdx < len(p.buffered):
			rec := p.buffered[p.bufIdx]
			p.buffered[p.bufIdx] = Record{}
			p.bufIdx++
			return rec, nil
		case p.pending:
			p.pending = false
			rec, ok, err := p.record()
			if err != nil || ok {
				return rec, err
			}
		case p.ended:
			if err := p.trailing(); err != nil {
				return Record{}, err
			}
			return Record{}, io.EOF
		default:
			el, ok, err := p.child()
			if err != nil {
				return Record{}, err
			}
			if !ok {
				p.ended = true
			} else if el.Name.Local == "record" {
				p.pending = true
			} else if err := p.skip(); err != nil { // late metadata is not read twice
				return Record{}, err
			}
		}
	}
}

// metadata reads report_metadata (RFC 7489 Appendix C ReportMetadataType; RFC 9990 adds
// generator).
func (p *legacyParser) metadata(rep *Report, m *legacyMeta) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "org_name":
			rep.OrgName, err = p.textString()
		case "email":
			rep.Email, err = p.textString()
			rep.Email = stripAngles(rep.Email)
		case "extra_contact_info":
			rep.ExtraContactInfo, err = p.textString()
		case "report_id":
			rep.ReportID, err = p.textString()
			rep.ReportID = stripAngles(rep.ReportID)
		case "generator":
			rep.Generator, err = p.textString()
		case "error":
			var e string
			if e, err = p.textString(); e != "" {
				rep.Errors = append(rep.Errors, e)
			}
		case "date_range":
			err = p.dateRange(m)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *legacyParser) dateRange(m *legacyMeta) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "begin":
			m.seenBegin = true
			m.begin, err = p.textString()
		case "end":
			m.seenEnd = true
			m.end, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// policy reads policy_published (RFC 7489 Appendix C PolicyPublishedType; np, testing and
// discovery_method are RFC 9990, which also drops pct).
func (p *legacyParser) policy(pol *Policy) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "domain":
			pol.Domain, err = p.textString()
			pol.Domain = policyDomain(pol.Domain)
		case "p":
			pol.P, err = p.enum("policy p", enumPolicy)
		case "sp":
			pol.SP, err = p.enum("policy sp", enumPolicy)
		case "np":
			pol.NP, err = p.enum("policy np", enumPolicy)
		case "adkim":
			pol.ADKIM, err = p.enum("adkim", enumAlignment)
		case "aspf":
			pol.ASPF, err = p.enum("aspf", enumAlignment)
		case "pct":
			pol.Pct, err = p.pct()
		case "fo":
			pol.FO, err = p.textString()
		case "testing":
			pol.Testing, err = p.enum("testing", enumYesNo)
		case "discovery_method":
			pol.DiscoveryMethod, err = p.enum("discovery_method", enumDiscovery)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// pct is nil when absent or unusable; a value outside 0-100 is kept with a warning.
func (p *legacyParser) pct() (*int, error) {
	b, err := p.text()
	if err != nil || len(b) == 0 {
		return nil, err
	}
	n, perr := parseCount(b)
	if perr != nil || n > 1_000_000 {
		p.warn("policy pct %q is not a percentage; ignored", clip(b))
		return nil, nil
	}
	if n > 100 {
		p.warn("policy pct %d is above 100", n)
	}
	v := int(n)
	return &v, nil
}

// validate applies the report-level rules once metadata and policy are read.
func (p *legacyParser) validate(rep *Report, m *legacyMeta) error {
	if rep.Policy.Domain == "" {
		if !m.seenPolicy {
			return fmt.Errorf("%w: no policy domain (no <policy_published>)", ErrInvalid)
		}
		return fmt.Errorf("%w: no policy domain", ErrInvalid)
	}
	if !m.seenBegin || !m.seenEnd {
		return fmt.Errorf("%w: no date range (<date_range> with <begin> and <end> missing)", ErrInvalid)
	}
	var err error
	if rep.DateBegin, err = checkTimestamp("begin", []byte(m.begin), p.now, p.lim.MaxFutureSkew); err != nil {
		return err
	}
	if rep.DateEnd, err = checkTimestamp("end", []byte(m.end), p.now, p.lim.MaxFutureSkew); err != nil {
		return err
	}
	switch {
	case rep.DateEnd.Before(rep.DateBegin):
		return fmt.Errorf("%w: date range ends before it begins (begin %d, end %d)", ErrInvalid,
			rep.DateBegin.Unix(), rep.DateEnd.Unix())
	case rep.DateEnd.Equal(rep.DateBegin):
		p.warn("date range is empty: begin == end (%s)", rep.DateBegin.Format(time.RFC3339))
	}
	if rep.OrgName == "" {
		rep.OrgName = emailDomain(rep.Email)
	}
	if rep.OrgName == "" && rep.Email == "" {
		p.warn("report has neither org_name nor email")
	}
	return nil
}

// ---- from record.go ----
// recordState holds what decides whether a record is kept, gathered while it is read: the
// record is always read to its end tag first, so a bad one can be skipped cleanly.
type legacyRecordState struct {
	rec      Record
	ipText   string // set only when the address is unusable, for the warning
	ipErr    error
	ipEmpty  bool
	countErr error
	count    string // the raw count, when unusable
}

// record reads one <record> (RFC 7489 Appendix C RecordType). ok is false when the record is
// skipped; the reason is then in the warnings.
func (p *legacyParser) record() (rec Record, ok bool, err error) {
	p.nrec++
	if p.nrec > p.lim.MaxRecords {
		return rec, false, fmt.Errorf("%w: more than %d records", ErrMalformed, p.lim.MaxRecords)
	}
	line := p.line()
	st := legacyRecordState{ipEmpty: true, countErr: errNoValue}
	for {
		el, more, err := p.child()
		if err != nil {
			return rec, false, err
		}
		if !more {
			break
		}
		switch el.Name.Local {
		case "row":
			err = p.row(&st)
		case "identifiers":
			err = p.identifiers(&st.rec)
		case "auth_results":
			err = p.authResults(&st.rec)
		default: // RFC 9990 extensions and anything else
			err = p.skip()
		}
		if err != nil {
			return rec, false, err
		}
	}
	return p.keep(&st, line)
}

// keep applies the skip rules of the package comment to a fully read record.
func (p *legacyParser) keep(st *legacyRecordState, line int) (Record, bool, error) {
	if why := p.skipReason(st); why != "" {
		p.warn("record %d (line %d) skipped: %s", p.nrec, line, why)
		return Record{}, false, nil
	}
	p.sum += st.rec.Count
	return st.rec, true, nil
}

func (p *legacyParser) skipReason(st *legacyRecordState) string {
	switch {
	case st.ipEmpty && st.countErr == nil && st.rec.Count == 0:
		// o2.pl sends such an empty record; it says nothing about any message.
		return "no source IP and zero count"
	case st.ipEmpty:
		return "no source_ip"
	case st.ipErr != nil:
		return fmt.Sprintf("invalid source_ip %q: %v", st.ipText, st.ipErr)
	case errors.Is(st.countErr, errNoValue):
		return "no count"
	case errors.Is(st.countErr, errOutOfRange):
		return fmt.Sprintf("count %q is negative or beyond int64", st.count)
	case st.countErr != nil:
		return fmt.Sprintf("count %q is not a number", st.count)
	case st.rec.Count > p.lim.MaxCount:
		return fmt.Sprintf("count %d is over the limit of %d messages per record (VIGIL_MAX_RECORD_COUNT)", st.rec.Count, p.lim.MaxCount)
	case st.rec.Count > math.MaxInt64-p.sum:
		return fmt.Sprintf("count %d would overflow the report's message total", st.rec.Count)
	}
	return ""
}

func (p *legacyParser) row(st *legacyRecordState) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "source_ip":
			err = p.sourceIP(st)
		case "count":
			err = p.count(st)
		case "policy_evaluated":
			err = p.policyEvaluated(&st.rec)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *legacyParser) sourceIP(st *legacyRecordState) error {
	b, err := p.text()
	if err != nil {
		return err
	}
	st.ipEmpty = len(b) == 0
	if !st.ipEmpty {
		var ip netip.Addr
		if ip, st.ipErr = sourceIP(b); st.ipErr != nil {
			st.ipText = clip(b)
		}
		st.rec.SourceIP = ip
	}
	return nil
}

func (p *legacyParser) count(st *legacyRecordState) error {
	b, err := p.text()
	if err != nil {
		return err
	}
	st.rec.Count, st.countErr = parseCount(b)
	if st.countErr != nil {
		st.count = clip(b)
	}
	return nil
}

func (p *legacyParser) policyEvaluated(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "disposition":
			rec.Disposition, err = p.enum("disposition", enumDisposition)
		case "dkim":
			rec.DKIM, err = p.enum("policy_evaluated dkim", enumDMARCResult)
		case "spf":
			rec.SPF, err = p.enum("policy_evaluated spf", enumDMARCResult)
		case "reason":
			err = p.reason(rec)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// reason reads a policy override reason; an empty one (parsedmarc's empty_reason sample) says
// nothing and is dropped.
func (p *legacyParser) reason(rec *Record) error {
	var r Reason
	for {
		el, ok, err := p.child()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch el.Name.Local {
		case "type":
			r.Type, err = p.enum("reason type", enumReason)
		case "comment":
			r.Comment, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
	if r != (Reason{}) {
		rec.Reasons = append(rec.Reasons, r)
	}
	return nil
}

func (p *legacyParser) identifiers(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "header_from":
			rec.HeaderFrom, err = p.textString()
		case "envelope_from":
			rec.EnvelopeFrom, err = p.textString()
		case "envelope_to":
			rec.EnvelopeTo, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// authResults keeps every dkim and spf result: a message can carry several signatures.
func (p *legacyParser) authResults(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch el.Name.Local {
		case "dkim":
			var r DKIMResult
			if r, err = p.dkimResult(); err == nil && r != (DKIMResult{}) {
				rec.DKIMResults = append(rec.DKIMResults, r)
			}
		case "spf":
			var r SPFResult
			if r, err = p.spfResult(); err == nil && r != (SPFResult{}) {
				rec.SPFResults = append(rec.SPFResults, r)
			}
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *legacyParser) dkimResult() (r DKIMResult, err error) {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return r, err
		}
		switch el.Name.Local {
		case "domain":
			r.Domain, err = p.textString()
		case "selector":
			r.Selector, err = p.textString()
		case "result":
			r.Result, err = p.enum("dkim result", enumDKIMResult)
		case "human_result":
			r.HumanResult, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return r, err
		}
	}
}

func (p *legacyParser) spfResult() (r SPFResult, err error) {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return r, err
		}
		switch el.Name.Local {
		case "domain":
			r.Domain, err = p.textString()
		case "scope":
			r.Scope, err = p.enum("spf scope", enumSPFScope)
		case "result":
			r.Result, err = p.enum("spf result", enumSPFResult)
		case "human_result":
			r.HumanResult, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return r, err
		}
	}
}

// ---- from decoder.go ----
// Parse reads a whole report including records, enforcing lim (zero fields: DefaultLimits).
func legacyParse(r io.Reader, lim Limits) (*Report, error) {
	return legacyParseAll(newLegacyParser(newLegacySource(r, lim.withDefaults().MaxTokenBytes), lim))
}

// ParseBytes is Parse over a byte slice; it reads b in place, without copying or retaining it.
func legacyParseBytes(b []byte, lim Limits) (*Report, error) {
	return legacyParseAll(newLegacyParser(newLegacySourceBytes(b, lim.withDefaults().MaxTokenBytes), lim))
}

func legacyParseAll(p *legacyParser) (*Report, error) {
	d := &legacyDecoder{p: p}
	rep, err := d.Header()
	if err != nil {
		return nil, err
	}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rep.Records = append(rep.Records, rec)
	}
	rep.Warnings = d.Warnings()
	return rep, nil
}

// Decoder streams a report: Header returns the report with metadata and policy filled once
// they are read (it stops at the first <record> after them); Next returns records one by one
// and io.EOF after </feedback>, having checked there is no trailing garbage. Memory stays flat
// for a report with millions of records, unless the records come before the metadata, in
// which case Header must buffer them. A Decoder is not safe for concurrent use.
type legacyDecoder struct {
	p      *legacyParser
	rep    *Report
	hdrErr error // what Header returned, returned again by every later call
	err    error // sticky: what ended Next (io.EOF included)
	headed bool
}

// Header reads up to the first record that follows the metadata and policy, and returns the
// report without records. Calling it again returns the same result.
func (d *legacyDecoder) Header() (*Report, error) {
	if !d.headed {
		d.headed = true
		d.rep, d.hdrErr = d.p.header()
		if d.hdrErr != nil {
			d.rep = nil
		}
	}
	return d.rep, d.hdrErr
}

// Next returns the next valid record. Records that are skipped (see the package comment) only
// show up in Warnings. After the last record Next returns io.EOF, and keeps returning it.
func (d *legacyDecoder) Next() (Record, error) {
	if _, err := d.Header(); err != nil {
		return Record{}, err
	}
	if d.err != nil {
		return Record{}, d.err
	}
	rec, err := d.p.next()
	if err != nil {
		d.err = err
	}
	return rec, err
}

// Warnings returns the warnings accumulated so far; skipped records are only known once Next
// has passed them, so read it after io.EOF.
func (d *legacyDecoder) Warnings() []string { return d.p.warnings() }
