package dmarc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// errTokenTooLong is returned by source when a token outgrows MaxTokenBytes; the parser turns
// it into an ErrMalformed naming the limit.
var errTokenTooLong = errors.New("token too long")

// readError marks an error from the caller's reader, so it is not mistaken for bad XML.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

const sourceBufSize = 16 << 10

// source feeds encoding/xml. Because it implements io.ByteReader, xml.Decoder reads it one byte
// at a time with no buffering of its own, and reads at most one byte past the token it returns.
// That makes a per-token size cap exact: after each token the parser calls resetToken, and the
// source refuses to hand out more than max bytes before the next call.
type source struct {
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

func newSource(r io.Reader, tokenCap int) *source {
	return &source{r: r, buf: make([]byte, sourceBufSize), max: tokenCap}
}

func newSourceBytes(b []byte, tokenCap int) *source {
	s := &source{buf: b, n: len(b), max: tokenCap, err: io.EOF}
	s.resetToken()
	return s
}

// resetToken starts a new token at the current position.
func (s *source) resetToken() {
	s.tokStart = s.base + int64(s.pos)
	s.setLim()
}

func (s *source) setLim() {
	s.lim = s.n
	if s.max > 0 {
		if end := s.tokStart + int64(s.max) - s.base; end < int64(s.n) {
			s.lim = int(max(end, 0))
		}
	}
}

// ReadByte is called by encoding/xml for every input byte: keep the common case short.
func (s *source) ReadByte() (byte, error) {
	if s.pos < s.lim {
		b := s.buf[s.pos]
		s.pos++
		return b, nil
	}
	return s.slowByte()
}

func (s *source) slowByte() (byte, error) {
	for s.pos >= s.lim {
		if s.pos < s.n {
			return 0, errTokenTooLong
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	return s.ReadByte()
}

// fill replaces the consumed buffer with fresh input.
func (s *source) fill() error {
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
func (s *source) readSome(p []byte) int {
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

func (s *source) endErr() error {
	if s.err == nil || s.err == io.EOF {
		return io.EOF
	}
	return readError{s.err}
}

// disableCap is called when a charset decoder takes over reading this source: the cap then
// applies to the decoded bytes, in the source above the decoder.
func (s *source) disableCap() {
	s.max = 0
	s.setLim()
}

// skipSpace drops a whitespace-only run between a tag and the next '<': indentation is most
// of the bytes of a pretty-printed report, and encoding/xml spends as long on it as on real
// content. The parser calls it right after a start or end tag, when encoding/xml has read
// exactly up to the '>', so text, CDATA and comments are never touched. A run longer than the
// buffer is left to encoding/xml.
func (s *source) skipSpace() {
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
func (s *source) readAhead() bool {
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
func (s *source) Read(p []byte) (int, error) {
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
func (s *source) peek(k int) ([]byte, error) {
	for s.n-s.pos < k && s.readAhead() {
	}
	if s.err != nil && s.err != io.EOF && s.n-s.pos < k {
		return s.buf[s.pos:s.n], readError{s.err}
	}
	return s.buf[s.pos:min(s.n, s.pos+k)], nil
}

// sniff checks how the input starts, before any XML is parsed: a UTF-8 byte order mark and
// leading whitespace are skipped (one generator writes " <?xml"), UTF-16 is refused because
// encoding/xml reads only ASCII-compatible encodings, and anything not starting with '<' is not
// XML at all (Yahoo sends the word "unused").
func (s *source) sniff() error {
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

func isUTF16Label(label string) bool {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-16", "utf-16le", "utf-16be", "utf16", "ucs-2":
		return true
	}
	return false
}

// charset returns the decoder for a declared encoding, nil meaning the bytes are UTF-8 already.
// iso-8859-1, latin1 and us-ascii decode as windows-1252, as the WHATWG encoding standard and
// every browser do: reporters that declare them often send 0x80-0x9F quotes.
func charset(label string) (encoding.Encoding, error) {
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
