package unwrap

import (
	"bytes"
	"compress/zlib"
	"io"
	"strings"
	"unicode/utf16"
)

type kind int

const (
	kindPayload kind = iota // a leaf; its Format says which
	kindGzip
	kindZlib
	kindZip
	kindMail
)

func (k kind) container() bool { return k == kindGzip || k == kindZlib || k == kindZip }

// sniff recognises b, the first bytes of a layer, by content alone.
func sniff(b []byte) (kind, Format) {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return kindGzip, ""
	case bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return kindZip, ""
	case isZlib(b):
		return kindZlib, ""
	case looksLikeMail(b):
		return kindMail, ""
	}
	return kindPayload, payloadFormat(b)
}

// isZlib accepts only the header bytes deflate encoders really write (RFC 1950: CM 8, a 32 KiB
// window, no preset dictionary). Two bytes are weak evidence ("x^" is a valid header), so the
// start of the stream must also inflate.
func isZlib(b []byte) bool {
	if len(b) < 2 || b[0] != 0x78 {
		return false
	}
	switch b[1] {
	case 0x01, 0x5e, 0x9c, 0xda:
	default:
		return false
	}
	if (uint(b[0])<<8|uint(b[1]))%31 != 0 {
		return false
	}
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, io.LimitReader(zr, 4<<10))
	// The prefix may end mid-stream; a bad checksum is zlib, only corrupt.
	return err == nil || err == io.ErrUnexpectedEOF || err == zlib.ErrChecksum
}

func payloadFormat(b []byte) Format {
	switch {
	case bytes.HasPrefix(b, []byte{0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe}),
		len(b) >= 2 && (b[0] == '<' && b[1] == 0 || b[0] == 0 && b[1] == '<'):
		return xmlFormat(fromUTF16(b))
	}
	b = bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(b) < 2 {
		return FormatUnknown
	}
	switch c := b[1]; b[0] {
	case '<':
		if c == '?' || c == '!' || c == '_' || c == ':' || c >= 0x80 || 'a' <= c|0x20 && c|0x20 <= 'z' {
			return xmlFormat(b)
		}
	case '{', '[':
		return jsonFormat(b)
	}
	return FormatUnknown
}

// fromUTF16 turns a UTF-16 prefix into UTF-8 so that the XML sniff can read it; the byte order
// comes from the BOM or from which byte of "<" is zero.
func fromUTF16(b []byte) []byte {
	big := b[0] == 0xfe || b[0] == 0
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if big {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	s := strings.TrimPrefix(string(utf16.Decode(u)), "\ufeff")
	return []byte(strings.TrimLeft(s, " \t\r\n"))
}

// xmlFormat decides whether an XML prefix is a DMARC report: the root element is <feedback>, or
// a <feedback> element follows a stray wrapper (a real reporter wraps it in <xs:schema>).
func xmlFormat(b []byte) Format {
	if localName(rootElement(b)) == "feedback" || hasFeedbackElement(b) {
		return FormatDMARC
	}
	return FormatXML
}

// rootElement skips the prolog (declaration, comments, processing instructions, DOCTYPE) and
// returns the name of the first element, or "" when the prefix ends first.
func rootElement(b []byte) string {
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		var end []byte
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			end = []byte("?>")
		case bytes.HasPrefix(b, []byte("<!--")):
			end = []byte("-->")
		case bytes.HasPrefix(b, []byte("<!")):
			end = []byte(">")
			if i, j := bytes.IndexByte(b, '['), bytes.IndexByte(b, '>'); i >= 0 && i < j {
				end = []byte("]>") // an internal DTD subset holds '>' of its own
			}
		case bytes.HasPrefix(b, []byte("<")):
			i := bytes.IndexAny(b[1:], " \t\r\n/>")
			if i < 0 {
				return ""
			}
			return string(b[1 : 1+i])
		default:
			return ""
		}
		i := bytes.Index(b, end)
		if i < 0 {
			return ""
		}
		b = b[i+len(end):]
	}
}

func localName(name string) string {
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// hasFeedbackElement looks for a start tag <feedback or <prefix:feedback.
func hasFeedbackElement(b []byte) bool {
	const tag = "feedback"
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(tag))
		if i < 0 {
			return false
		}
		i += off
		off = i + len(tag)
		if off < len(b) && !bytes.ContainsRune([]byte(" \t\r\n>/"), rune(b[off])) {
			continue
		}
		j := i - 1
		if j >= 0 && b[j] == ':' {
			for j--; j >= 0 && isNameByte(b[j]); j-- {
			}
		}
		if j >= 0 && b[j] == '<' {
			return true
		}
	}
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= 0x80 || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z'
}

// jsonFormat accepts a JSON opening and calls it TLS-RPT when an RFC 8460 top-level key shows.
func jsonFormat(b []byte) Format {
	rest := bytes.TrimLeft(b[1:], " \t\r\n")
	if len(rest) > 0 && !bytes.ContainsRune([]byte(`{["}]-0123456789tfn`), rune(rest[0])) {
		return FormatUnknown // "[This message was forwarded]" is text, not JSON
	}
	for _, key := range []string{`"organization-name"`, `"policies"`} {
		if i := bytes.Index(b, []byte(key)); i >= 0 && bytes.HasPrefix(bytes.TrimLeft(b[i+len(key):], " \t\r\n"), []byte(":")) {
			return FormatTLSRPT
		}
	}
	return FormatJSON
}

// looksLikeMail accepts an optional mbox "From " line, then header fields of which one, before
// the header block ends, is a field that mail really carries, so that text such as
// "Note: ..." is not taken for a message.
func looksLikeMail(b []byte) bool {
	b = bytes.TrimLeft(b, "\r\n")
	if bytes.HasPrefix(b, []byte("From ")) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
	}
	for first := true; len(b) > 0; first = false {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false // a line cut by the prefix proves nothing
		}
		line := trimEOL(b[:i])
		b = b[i+1:]
		if !first && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && !isBlank(line) {
			continue
		}
		name, ok := fieldName(line)
		if !ok {
			return false
		}
		if isMailField(name) {
			return true
		}
	}
	return false
}

// scanHeader finds where an e-mail's header block ends and its body starts. Like the mail
// readers reporters are tested against, it is liberal: a line of only white space ends the
// header too (a real Lotus Notes failure report has one), and so does the first line that is
// no header field, which then starts the body. A first line that is not a field means there
// is no header at all.
func scanHeader(b []byte) (hdrEnd, bodyStart int) {
	for off := 0; off < len(b); {
		next := len(b)
		if i := bytes.IndexByte(b[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		line := trimEOL(b[off:next])
		switch {
		case isBlank(line):
			return off, next
		case line[0] == ' ' || line[0] == '\t':
			if off == 0 {
				return 0, 0
			}
		default:
			if _, ok := fieldName(line); !ok {
				return off, off
			}
		}
		off = next
	}
	return len(b), len(b)
}

// fieldName returns the name of a header field line: RFC 5322 printable characters up to the
// colon, with the white space the obsolete syntax allows before it ("Subject :").
func fieldName(line []byte) ([]byte, bool) {
	name, _, ok := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !ok || len(name) == 0 {
		return nil, false
	}
	for _, c := range name {
		if c <= ' ' || c > '~' {
			return nil, false
		}
	}
	return name, true
}

func isMailField(name []byte) bool {
	for _, prefix := range []string{"x-", "content-", "arc-"} {
		if len(name) > len(prefix) && bytes.EqualFold(name[:len(prefix)], []byte(prefix)) {
			return true
		}
	}
	for _, f := range mailFields {
		if bytes.EqualFold(name, []byte(f)) {
			return true
		}
	}
	return false
}

var mailFields = []string{"from", "to", "cc", "subject", "date", "received", "return-path", "message-id",
	"mime-version", "delivered-to", "envelope-to", "delivery-date", "reply-to", "sender", "dkim-signature",
	"authentication-results", "received-spf", "in-reply-to", "references"}

func trimEOL(line []byte) []byte {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\v' && c != '\f' {
			return false
		}
	}
	return true
}

// MediaType names the media type of a file from its first bytes (a few KB are enough), by the
// same content sniffing the pipeline unwraps with: a stored original is served with the type
// it really has, whatever its name claims (Mimecast sends zip named .gz).
func MediaType(b []byte) string {
	k, f := sniff(b)
	switch k {
	case kindGzip:
		return "application/gzip"
	case kindZlib:
		return "application/zlib"
	case kindZip:
		return "application/zip"
	case kindMail:
		return "message/rfc822"
	}
	switch f {
	case FormatDMARC, FormatXML:
		return "application/xml"
	case FormatTLSRPT:
		return "application/tlsrpt+json"
	case FormatJSON:
		return "application/json"
	}
	return "application/octet-stream"
}
