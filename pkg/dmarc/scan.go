package dmarc

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"unicode/utf8"
)

// The scanner is a small XML tokenizer for what reports use: the XML declaration, elements
// with attributes, character data with the five predefined entities and character references,
// CDATA sections, comments and processing instructions. It replaces encoding/xml's RawToken
// (which reads one byte at a time through an interface and allocates for every token) and
// accepts and rejects the same input as RawToken did in strict mode, with the same error
// messages: FuzzTokenizerDifferential compares the two. Only the token cap counts differently
// (see below; RawToken's count was one byte off either way). Like RawToken it does not match
// end tags or count depth (the parser does), and it reports a DOCTYPE or other markup
// declaration as a token for the parser to refuse.
//
// A token is scanned in one piece from the source's buffer: the scan functions below get the
// unread bytes d, starting at the token, and return the token's length, or needMore when d ends
// inside it. The scanner then reads more and scans again; it doubles what it asks for each
// time, so a token that arrives in many small reads is rescanned only a few times. A token's
// raw bytes (a tag with its attributes, a text run up to the next '<', a comment, a processing
// instruction, a CDATA section, a markup declaration) may not exceed MaxTokenBytes: the scan
// functions see at most MaxTokenBytes+1 bytes, so a token that needs more is too long. The
// same bytes are seen whether the input is a slice or a reader, so both give the same result
// and the same error.
//
// Names, text and attribute values are returned as slices into the buffer (or into a scratch
// buffer when an entity or a carriage return had to be decoded), valid until the next call.

type tokKind uint8

const (
	tokStart     tokKind = iota + 1 // start tag: name, attrs; <x/> is followed by a tokEnd
	tokEnd                          // end tag: name (nil for the end of <x/>)
	tokText                         // character data or CDATA: text
	tokComment                      //
	tokPI                           // processing instruction: piTarget, piData
	tokDirective                    // <!DOCTYPE ...> or another markup declaration: directive
)

// needMore is the length a scan function returns when the token does not end inside d.
const needMore = -1

// attrSpan locates an attribute's qualified name and decoded value in scanner.attrBuf.
type attrSpan struct{ name, value [2]int }

type scanner struct {
	src      *source
	max      int // MaxTokenBytes
	lineBase int // lines before the current source began (it changes at a charset switch)

	// The current token.
	name      []byte // tokStart, tokEnd: the qualified name as written
	local     int    // tokStart: where the local name starts in name
	text      []byte // tokText
	piTarget  []byte // tokPI
	piData    []byte
	directive []byte     // tokDirective: the declaration after "<!", comments made spaces
	attrs     []attrSpan // tokStart
	attrBuf   []byte     // attribute names and values, stable until the next start tag
	needClose bool       // the last start tag was <x/>: the next token is its end

	scratch   []byte          // decoded text
	nameCheck map[string]bool // verdicts on names with non-ASCII characters
}

// line is the 1-based input line of offset off in the current source's buffer.
func (s *scanner) line(off int) int {
	return s.lineBase + s.src.newlines(off) + 1
}

// switchSource makes the scanner read src (a charset decoder's output) from now on.
func (s *scanner) switchSource(src *source) {
	s.lineBase += s.src.newlines(s.src.pos)
	s.src = src
}

// next returns the next token, io.EOF at the end of the input, or an error that is ready to
// be returned to the caller (ErrMalformed with the line, or the reader's error).
func (s *scanner) next() (tokKind, error) {
	if s.needClose {
		s.needClose = false
		s.name = nil
		return tokEnd, nil
	}
	for {
		src := s.src
		d := src.buf[src.pos:src.n]
		capped := len(d) > s.max
		if capped {
			d = d[:s.max+1]
		}
		final := !capped && src.final()
		if len(d) == 0 && final {
			return 0, io.EOF
		}
		if len(d) > 0 {
			kind, end, err := s.scan(d, final)
			switch {
			case err != nil:
				return 0, err
			case end > s.max || end == needMore && capped:
				return 0, s.tooLong()
			case end >= 0:
				src.pos += end
				return kind, nil
			}
		}
		if !src.more(min(2*(src.n-src.pos)+512, s.max+1)) && !src.final() {
			return 0, fmt.Errorf("read report: %w", src.err)
		}
	}
}

func (s *scanner) tooLong() error {
	src := s.src
	return fmt.Errorf("%w: an XML token (text, tag or comment) exceeds %d bytes (line %d)",
		ErrMalformed, s.max, s.line(src.pos+min(src.n-src.pos, s.max)))
}

// syntaxError is the error for a problem found at offset off of the current token, on the
// line encoding/xml stood on after reading the token's first off bytes.
func (s *scanner) syntaxError(off int, msg string) error {
	return fmt.Errorf("%w: XML syntax error on line %d: %s", ErrMalformed, s.line(s.src.pos+off), msg)
}

// short is what a scan function returns when d ends inside the token: needMore, or, when d
// is all the input there is, the error for a truncated document.
func (s *scanner) short(d []byte, final bool) (tokKind, int, error) {
	if final {
		return 0, 0, s.syntaxError(len(d), "unexpected EOF")
	}
	return 0, needMore, nil
}

// skipSpace drops a whitespace-only run between a tag and the next '<': indentation is most
// of the bytes of a pretty-printed report. The parser calls it after a start or end tag, so
// text, CDATA and comments are never touched; a run longer than MaxTokenBytes, or one that
// ends the input, is left for next to read as text.
func (s *scanner) skipSpace() {
	for {
		src := s.src
		d := src.buf[src.pos:src.n]
		for i, c := range d {
			switch c {
			case ' ', '\n', '\t', '\r':
				continue
			case '<':
				if i <= s.max {
					src.pos += i
				}
			}
			return
		}
		if len(d) > s.max || !src.more(min(2*len(d)+512, s.max+1)) {
			return
		}
	}
}

// scan reads the token at the start of d.
func (s *scanner) scan(d []byte, final bool) (tokKind, int, error) {
	if d[0] != '<' {
		return s.scanText(d, final)
	}
	if len(d) < 2 {
		return s.short(d, final)
	}
	switch d[1] {
	case '/':
		return s.scanEndTag(d, final)
	case '?':
		return s.scanPI(d, final)
	case '!':
		return s.scanBang(d, final)
	}
	return s.scanStartTag(d, final)
}

// scanText reads character data up to the next '<' or the end of the input.
func (s *scanner) scanText(d []byte, final bool) (tokKind, int, error) {
	end := bytes.IndexByte(d, '<')
	if end < 0 {
		if !final {
			return 0, needMore, nil
		}
		end = len(d)
	}
	text, err := s.charData(d[:end], 0, modeText, end == len(d), end)
	if err != nil {
		return 0, 0, err
	}
	s.text = text
	return tokText, end, nil
}

// Character classes, indexed by byte.
var (
	// nameBytes are the bytes encoding/xml reads as part of a name: ASCII letters, digits,
	// '_', ':', '.', '-', and every byte of a multi-byte character (checked afterwards).
	nameBytes [256]bool
	// plain[mode] are the bytes character data of that mode keeps as they are, with nothing
	// to decode or check: printable ASCII (where '<' only occurs in CDATA), tab and newline,
	// except '&' and ']' where they mean something.
	plain [3][256]bool
)

// noCheck is charData's end when the characters are not to be checked.
const noCheck = -1

// Character data modes.
const (
	modeText  = iota // text between tags: entities, and "]]>" is an error
	modeAttr         // a quoted attribute value: entities, "]]>" allowed
	modeCDATA        // the content of a CDATA section: nothing decoded
)

func init() {
	for c := 0; c < 256; c++ {
		nameBytes[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == ':' || c == '.' || c == '-' || c >= utf8.RuneSelf
		for mode := range plain {
			plain[mode][c] = (0x20 <= c && c < utf8.RuneSelf || c == '\t' || c == '\n') &&
				!(c == '&' && mode != modeCDATA) && !(c == ']' && mode == modeText)
		}
	}
}

// charData checks and decodes character data the way encoding/xml does: entity and character
// references (not in CDATA), "\r\n" and "\r" become "\n", "]]>" is an error in text, and then
// every character must be valid UTF-8 and allowed by XML 1.0. raw starts at offset base of the
// token; atEOF says raw ends at the end of the input (so a reference cut there is an
// unexpected EOF rather than a missing semicolon); end is the offset where encoding/xml stood
// when it checked the characters, for the line of such an error, or noCheck when it never got
// to check them (a '<' in an attribute value ends it first). The result is raw itself when
// nothing needed decoding, else a slice of the scanner's scratch buffer.
func (s *scanner) charData(raw []byte, base, mode int, atEOF bool, end int) ([]byte, error) {
	tab := &plain[mode]
	for i, c := range raw {
		if !tab[c] {
			return s.charDataSlow(raw, i, base, mode, atEOF, end)
		}
	}
	return raw, nil
}

func (s *scanner) charDataSlow(raw []byte, i, base, mode int, atEOF bool, end int) ([]byte, error) {
	tab := &plain[mode]
	out := raw[:i] // raw itself until something is decoded
	decoded := false
	decode := func() {
		if !decoded {
			decoded = true
			s.scratch = append(s.scratch[:0], raw[:i]...)
			out = s.scratch
		}
	}
	bad := "" // the first character that is not allowed: reported after entity errors
	for i < len(raw) {
		c := raw[i]
		switch {
		case tab[c]:
			if decoded {
				out = append(out, c)
			}
			i++
		case c == '&' && mode != modeCDATA:
			r, n, err := s.reference(raw[i:], base+i, atEOF)
			if err != nil {
				return nil, err
			}
			decode()
			out = utf8.AppendRune(out, r)
			if bad == "" && !isXMLChar(r) {
				bad = fmt.Sprintf("illegal character code %U", r)
			}
			i += n
		case c == ']' && mode == modeText:
			if bytes.HasPrefix(raw[i:], []byte("]]>")) {
				return nil, s.syntaxError(base+i+3, "unescaped ]]> not in CDATA section")
			}
			if decoded {
				out = append(out, c)
			}
			i++
		case c == '\r':
			decode()
			out = append(out, '\n')
			i++
			if i < len(raw) && raw[i] == '\n' {
				i++
			}
		case c < utf8.RuneSelf: // a control character
			if bad == "" {
				bad = fmt.Sprintf("illegal character code %U", rune(c))
			}
			if decoded {
				out = append(out, c)
			}
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if bad == "" {
				if r == utf8.RuneError && n == 1 {
					bad = "invalid UTF-8"
				} else if !isXMLChar(r) {
					bad = fmt.Sprintf("illegal character code %U", r)
				}
			}
			if decoded {
				out = append(out, raw[i:i+n]...)
			}
			i += n
		}
	}
	if bad != "" && end != noCheck {
		return nil, s.syntaxError(end, bad)
	}
	if !decoded {
		return raw, nil
	}
	s.scratch = out
	return out, nil
}

// isXMLChar reports whether r is in the Char production of XML 1.0.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || 0x20 <= r && r <= 0xD7FF ||
		0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= utf8.MaxRune
}

// reference decodes the entity or character reference at the start of raw ('&'), which is at
// offset off of the token, and returns the character and the reference's length. Only the five
// predefined entities exist: nothing is ever declared, so nothing is ever expanded.
func (s *scanner) reference(raw []byte, off int, atEOF bool) (rune, int, error) {
	// bad reports the reference raw[:j], which ends without a semicolon at raw[j] or at the
	// end of the input.
	bad := func(j int) (rune, int, error) {
		if j == len(raw) && atEOF {
			return 0, 0, s.syntaxError(off+j, "unexpected EOF")
		}
		return 0, 0, s.syntaxError(off+j, "invalid character entity "+string(raw[:j])+" (no semicolon)")
	}
	invalid := func(j int) (rune, int, error) { // raw[:j] ends with ';'
		return 0, 0, s.syntaxError(off+j, "invalid character entity "+string(raw[:j]))
	}
	j := 1
	if j < len(raw) && raw[j] == '#' {
		j++
		hex := j < len(raw) && raw[j] == 'x'
		if hex {
			j++
		}
		base := 10
		if hex {
			base = 16
		}
		start := j
		v, big := 0, false
		for ; j < len(raw); j++ {
			d := digitValue(raw[j], hex)
			if d < 0 {
				break
			}
			if v = v*base + d; v > utf8.MaxRune {
				big, v = true, 0
			}
		}
		if j == len(raw) || raw[j] != ';' {
			return bad(j)
		}
		if j == start || big {
			return invalid(j + 1)
		}
		r := rune(v)
		if 0xD800 <= r && r <= 0xDFFF {
			r = utf8.RuneError // encoding/xml's string(rune(n)): a surrogate reads as U+FFFD
		}
		return r, j + 1, nil
	}
	for j < len(raw) && nameBytes[raw[j]] {
		j++
	}
	if j == len(raw) || raw[j] != ';' {
		return bad(j)
	}
	var r rune
	switch string(raw[1:j]) {
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "amp":
		r = '&'
	case "apos":
		r = '\''
	case "quot":
		r = '"'
	default:
		return invalid(j + 1)
	}
	return r, j + 1, nil
}

// digitValue is the value of the decimal (or hexadecimal) digit c, or -1.
func digitValue(c byte, hex bool) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case hex && 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case hex && 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanName reads a name at d[i:] as encoding/xml does: the bytes up to the next ASCII byte that
// cannot be part of a name, then checked against the XML name rules. It returns the offset
// after the name and where its colon is: the index in the name, noColon, or manyColons when
// there are several (which a qualified name may not have). missing is the error when there is
// no name at all.
func (s *scanner) scanName(d []byte, i int, final bool, missing string) (end, colon int, err error) {
	start := i
	colon = noColon
	var or byte
	for ; i < len(d); i++ {
		c := d[i]
		if !nameBytes[c] {
			break
		}
		if c == ':' {
			if colon != noColon {
				colon = manyColons
			} else {
				colon = i - start
			}
		}
		or |= c
	}
	if i == len(d) {
		if final {
			return 0, 0, s.syntaxError(i, "unexpected EOF")
		}
		return needMore, 0, nil
	}
	if i == start {
		return 0, 0, s.syntaxError(i, missing)
	}
	if c := d[start]; or >= utf8.RuneSelf && !s.nonASCIIName(d[start:i]) ||
		or < utf8.RuneSelf && !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':') {
		return 0, 0, s.syntaxError(i, "invalid XML name: "+string(d[start:i]))
	}
	return i, colon, nil
}

// Where scanName found a name's colon, when not in the name.
const (
	noColon    = -1
	manyColons = -2
)

// localStart is where the local part of a name begins, given its colon: after a colon that
// neither starts nor ends the name, else at 0 (encoding/xml's reading of "a:b", ":b", "a:").
func localStart(name []byte, colon int) int {
	if colon > 0 && colon < len(name)-1 {
		return colon + 1
	}
	return 0
}

// nonASCIIName checks a name with non-ASCII characters against encoding/xml's own tables of
// XML name characters (by letting it read the name), so exactly the names it accepted are
// accepted. Reports never have such names; this is far from the hot path.
func (s *scanner) nonASCIIName(name []byte) bool {
	if ok, seen := s.nameCheck[string(name)]; seen {
		return ok
	}
	probe := make([]byte, 0, len(name)+3)
	probe = append(probe, '<')
	for _, c := range name {
		if c == ':' { // ':' and '_' are allowed in the same places; one colon at most may be
			c = '_'
		}
		probe = append(probe, c)
	}
	probe = append(probe, '/', '>')
	_, err := xml.NewDecoder(bytes.NewReader(probe)).RawToken()
	if len(name) <= 64 { // a few short names, repeated in every record of a hostile file
		if s.nameCheck == nil || len(s.nameCheck) >= 64 {
			s.nameCheck = make(map[string]bool)
		}
		s.nameCheck[string(name)] = err == nil
	}
	return err == nil
}

// splitName splits a qualified name that has at most one colon into prefix and local name, as
// encoding/xml does (see localStart).
func splitName(name []byte) (prefix, local []byte) {
	i := localStart(name, bytes.IndexByte(name, ':'))
	if i == 0 {
		return nil, name
	}
	return name[:i-1], name[i:]
}

func skipWS(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// scanStartTag reads <name attr="value" ...> or <name .../>.
func (s *scanner) scanStartTag(d []byte, final bool) (tokKind, int, error) {
	i, colon, err := s.scanName(d, 1, final, "expected element name after <")
	if err != nil || i < 0 {
		return 0, i, err
	}
	if colon == manyColons {
		return 0, 0, s.syntaxError(i, "expected element name after <")
	}
	name := d[1:i]
	s.attrs = s.attrs[:0]
	s.attrBuf = s.attrBuf[:0]
	for {
		if i = skipWS(d, i); i == len(d) {
			return s.short(d, final)
		}
		switch d[i] {
		case '>':
			s.name, s.local = name, localStart(name, colon)
			return tokStart, i + 1, nil
		case '/':
			if i+1 == len(d) {
				return s.short(d, final)
			}
			if d[i+1] != '>' {
				return 0, 0, s.syntaxError(i+2, "expected /> in element")
			}
			s.name, s.local = name, localStart(name, colon)
			s.needClose = true
			return tokStart, i + 2, nil
		}
		if i, err = s.scanAttr(d, i, final); err != nil || i < 0 {
			return 0, i, err
		}
	}
}

// scanAttr reads one attribute name="value" at d[i:] and keeps it in attrBuf.
func (s *scanner) scanAttr(d []byte, i int, final bool) (int, error) {
	const missing = "expected attribute name in element"
	start := i
	i, colon, err := s.scanName(d, i, final, missing)
	if err != nil || i < 0 {
		return i, err
	}
	if colon == manyColons {
		return 0, s.syntaxError(i, missing)
	}
	name := d[start:i]
	if i = skipWS(d, i); i == len(d) {
		_, end, err := s.short(d, final)
		return end, err
	}
	if d[i] != '=' {
		return 0, s.syntaxError(i+1, "attribute name without = in element")
	}
	if i = skipWS(d, i+1); i == len(d) {
		_, end, err := s.short(d, final)
		return end, err
	}
	q := d[i]
	if q != '"' && q != '\'' {
		return 0, s.syntaxError(i+1, "unquoted or missing attribute value in element")
	}
	i++
	rest := d[i:]
	end := bytes.IndexByte(rest, q)
	if lt := bytes.IndexByte(rest, '<'); lt >= 0 && (end < 0 || lt < end) {
		if _, err := s.charData(rest[:lt], i, modeAttr, false, noCheck); err != nil {
			return 0, err
		}
		return 0, s.syntaxError(i+lt+1, "unescaped < inside quoted string")
	}
	if end < 0 {
		if !final {
			return needMore, nil
		}
		// encoding/xml takes the value to run to the end of the input, checks it, then finds
		// the tag unfinished.
		if _, err := s.charData(rest, i, modeAttr, true, len(d)); err != nil {
			return 0, err
		}
		_, _, err := s.short(d, final)
		return 0, err
	}
	value, err := s.charData(rest[:end], i, modeAttr, false, i+end+1)
	if err != nil {
		return 0, err
	}
	var a attrSpan
	a.name[0] = len(s.attrBuf)
	s.attrBuf = append(s.attrBuf, name...)
	a.name[1] = len(s.attrBuf)
	a.value[0] = len(s.attrBuf)
	s.attrBuf = append(s.attrBuf, value...)
	a.value[1] = len(s.attrBuf)
	s.attrs = append(s.attrs, a)
	return i + end + 1, nil
}

// scanEndTag reads </name>.
func (s *scanner) scanEndTag(d []byte, final bool) (tokKind, int, error) {
	i, colon, err := s.scanName(d, 2, final, "expected element name after </")
	if err != nil || i < 0 {
		return 0, i, err
	}
	if colon == manyColons {
		return 0, 0, s.syntaxError(i, "expected element name after </")
	}
	name := d[2:i]
	if i = skipWS(d, i); i == len(d) {
		return s.short(d, final)
	}
	if d[i] != '>' {
		local := name[localStart(name, colon):]
		return 0, 0, s.syntaxError(i+1, "invalid characters between </"+string(local)+" and >")
	}
	s.name = name
	return tokEnd, i + 1, nil
}

// scanPI reads <?target data?>.
func (s *scanner) scanPI(d []byte, final bool) (tokKind, int, error) {
	i, _, err := s.scanName(d, 2, final, "expected target name after <?")
	if err != nil || i < 0 {
		return 0, i, err
	}
	target := d[2:i]
	i = skipWS(d, i)
	end := bytes.Index(d[i:], []byte("?>"))
	if end < 0 {
		return s.short(d, final)
	}
	s.piTarget, s.piData = target, d[i:i+end]
	return tokPI, i + end + 2, nil
}

// scanBang reads what starts with "<!": a comment, a CDATA section or a markup declaration.
func (s *scanner) scanBang(d []byte, final bool) (tokKind, int, error) {
	if len(d) < 3 {
		return s.short(d, final)
	}
	switch d[2] {
	case '-':
		if len(d) < 4 {
			return s.short(d, final)
		}
		if d[3] != '-' {
			return 0, 0, s.syntaxError(4, "invalid sequence <!- not part of <!--")
		}
		// The comment ends at the first "--", which must be followed by '>'.
		k := bytes.Index(d[4:], []byte("--"))
		if k < 0 || 4+k+2 == len(d) {
			return s.short(d, final)
		}
		if end := 4 + k + 2; d[end] != '>' {
			return 0, 0, s.syntaxError(end+1, `invalid sequence "--" not allowed in comments`)
		}
		return tokComment, 4 + k + 3, nil
	case '[':
		const open = "<![CDATA["
		for i := 3; i < len(open); i++ {
			if i == len(d) {
				return s.short(d, final)
			}
			if d[i] != open[i] {
				return 0, 0, s.syntaxError(i+1, "invalid <![ sequence")
			}
		}
		k := bytes.Index(d[len(open):], []byte("]]>"))
		if k < 0 {
			if final {
				return 0, 0, s.syntaxError(len(d), "unexpected EOF in CDATA section")
			}
			return 0, needMore, nil
		}
		end := len(open) + k + 3
		text, err := s.charData(d[len(open):len(open)+k], len(open), modeCDATA, false, end)
		if err != nil {
			return 0, 0, err
		}
		s.text = text
		return tokText, end, nil
	}
	return s.scanDirective(d, final)
}

// scanDirective reads a markup declaration such as <!DOCTYPE ...> to its end, as encoding/xml
// does (quoted strings, nested <...> and comments), so the parser can refuse it by name.
func (s *scanner) scanDirective(d []byte, final bool) (tokKind, int, error) {
	out := append(s.scratch[:0], d[2])
	var quote byte
	depth := 0
	i := 3
	for {
		if i == len(d) {
			s.scratch = out
			return s.short(d, final)
		}
		b := d[i]
		i++
		if quote == 0 && b == '>' && depth == 0 {
			break
		}
	handle:
		out = append(out, b)
		switch {
		case b == quote:
			quote = 0
		case quote != 0:
		case b == '\'' || b == '"':
			quote = b
		case b == '>':
			depth--
		case b == '<':
			const open = "!--"
			for k := 0; k < len(open); k++ {
				if i == len(d) {
					s.scratch = out
					return s.short(d, final)
				}
				b = d[i]
				i++
				if b != open[k] {
					out = append(out, open[:k]...)
					depth++
					goto handle
				}
			}
			out = out[:len(out)-1] // the '<': the comment becomes one space
			k := bytes.Index(d[i:], []byte("-->"))
			if k < 0 {
				s.scratch = out
				return s.short(d, final)
			}
			i += k + 3
			out = append(out, ' ')
		}
	}
	s.scratch = out
	s.directive = out
	return tokDirective, i, nil
}

// declParam returns the value of param in the content of an XML declaration, found the way
// encoding/xml finds it, so that the same declarations are read the same: the first param=
// directly followed by a quote, up to the next such quote.
func declParam(param string, content []byte) string {
	key := []byte(param + "=")
	for i := 0; ; {
		k := bytes.Index(content[i:], key)
		if k < 0 || i+k+len(key) >= len(content) {
			return ""
		}
		q := content[i+k+len(key)]
		i += k + len(key) + 1
		if q == '"' || q == '\'' {
			if end := bytes.IndexByte(content[i:], q); end >= 0 {
				return string(content[i : i+end])
			}
			return ""
		}
	}
}
