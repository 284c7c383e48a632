package dmarc

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// readError marks an error from the caller's reader, so it is not mistaken for bad XML.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

const sourceBufSize = 16 << 10

// source is the buffered input the scanner reads: the caller's byte slice, read in place, or
// a window on the caller's reader. The scanner looks at buf[pos:n] and asks for more only when
// a token does not end inside it; more then moves the unread bytes to the front and reads
// behind them, growing the buffer only as far as one token needs (the scanner never asks for
// more than MaxTokenBytes+1 bytes at once), so memory stays flat whatever the input size.
type source struct {
	r      io.Reader // nil when reading a byte slice
	buf    []byte
	pos, n int   // next unread byte; end of valid data
	err    error // sticky error from r (io.EOF included); io.EOF from the start for a slice

	// Lines are counted lazily: nl is the number of newlines in the input before buf[nlPos].
	nl, nlPos int
}

func newSource(r io.Reader) *source {
	return &source{r: r, buf: make([]byte, sourceBufSize)}
}

func newSourceBytes(b []byte) *source {
	return &source{buf: b, n: len(b), err: io.EOF}
}

// final reports whether buf[pos:n] is all the input there will ever be.
func (s *source) final() bool { return s.r == nil || s.err == io.EOF }

// newlines returns the number of newlines in the input before buf[p], counting forward (or
// back) from the last position asked for, so a whole report is counted about once.
func (s *source) newlines(p int) int {
	if p >= s.nlPos {
		s.nl += bytes.Count(s.buf[s.nlPos:p], nlByte)
	} else {
		s.nl -= bytes.Count(s.buf[p:s.nlPos], nlByte)
	}
	s.nlPos = p
	return s.nl
}

var nlByte = []byte{'\n'}

// more reads input behind the unread bytes until at least want of them are buffered or the
// input ends; false when not a single byte could be added.
func (s *source) more(want int) bool {
	if s.r == nil || s.err != nil {
		return false
	}
	if s.pos > 0 {
		s.newlines(s.pos)
		s.n = copy(s.buf, s.buf[s.pos:s.n])
		s.pos, s.nlPos = 0, 0
	}
	if want > len(s.buf) {
		grown := make([]byte, max(want, 2*len(s.buf)))
		copy(grown, s.buf[:s.n])
		s.buf = grown
	}
	added := false
	for s.n < want && s.err == nil && s.n < len(s.buf) {
		k := s.readSome(s.buf[s.n:])
		s.n += k
		added = added || k > 0
	}
	return added
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

// endErr is what reading past the buffered bytes gives: io.EOF or the reader's error.
func (s *source) endErr() error {
	if s.err == nil || s.err == io.EOF {
		return io.EOF
	}
	return readError{s.err}
}

// Read serves the charset decoder that sits on top of this source once a document declares a
// non-UTF-8 encoding: the scanner then reads a source above the decoder, and the token cap
// applies to the decoded bytes.
func (s *source) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		if s.r == nil || s.err != nil {
			return 0, s.endErr()
		}
		s.pos, s.n = 0, s.readSome(s.buf)
		if s.n == 0 {
			return 0, s.endErr()
		}
	}
	k := copy(p, s.buf[s.pos:s.n])
	s.pos += k
	return k, nil
}

// peek returns up to k unread bytes without consuming them.
func (s *source) peek(k int) ([]byte, error) {
	for s.n-s.pos < k && s.more(s.n-s.pos+1) {
	}
	if s.err != nil && s.err != io.EOF && s.n-s.pos < k {
		return s.buf[s.pos:s.n], readError{s.err}
	}
	return s.buf[s.pos:min(s.n, s.pos+k)], nil
}

// sniff checks how the input starts, before any XML is parsed: a UTF-8 byte order mark and
// leading whitespace are skipped (one generator writes " <?xml"), UTF-16 is refused because
// only ASCII-compatible encodings are read, and anything not starting with '<' is not XML at
// all (Yahoo sends the word "unused").
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
		case ' ', '\t', '\r', '\n':
			s.pos++
		case '<':
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
