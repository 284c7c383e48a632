package unwrap

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// maxHeaderBytes bounds an e-mail's header block, which is kept as a map of fields; real
// headers (a dozen Received and ARC lines) stay far below it.
const maxHeaderBytes = 1 << 20

// errFailure stops the walk of a message once an ARF part shows it is a failure report.
var errFailure = errors.New("message is a failure report")

// message is the state of one e-mail being walked.
type message struct {
	w        *walker
	raw      []byte // the whole message, handed out as one part when it is a failure report
	path     string
	depth    int
	msgDepth int
	parts    int    // MIME parts seen, against MaxEntries
	arf      string // Feedback-Type of a non-DMARC ARF part, for the "no report" reason
}

// mail walks an e-mail. A message inside a stream (an .eml in a gzip) is buffered first, held
// to MaxInputBytes as if it had been handed in directly; one inside a MIME part is a sub-slice.
func (w *walker) mail(n node) error {
	if n.msgDepth > w.lim.MaxMessageDepth {
		return fmt.Errorf("%s: %w: e-mail nested deeper than %d messages", label(n.path), ErrLimit, w.lim.MaxMessageDepth)
	}
	if err := w.deeper(n); err != nil {
		return err
	}
	raw, err := n.bytes(w.lim.MaxInputBytes, "e-mail")
	if err != nil {
		return err
	}
	raw = trimMbox(raw)
	m := &message{w: w, raw: raw, path: join(n.path, "message"), depth: n.depth + 1, msgDepth: n.msgDepth + 1}
	h, body, err := m.header(raw)
	if err != nil {
		return err
	}
	before := w.parts
	err = m.entity(h, body, "", 0)
	if errors.Is(err, errFailure) || err == nil && w.parts == before && failureSubject(h.subject) {
		return w.emit(node{data: raw, path: m.path, depth: m.depth, msgDepth: m.msgDepth}, FormatFailure)
	}
	if err == nil && w.parts == before {
		w.noReport(m.path + ": " + m.noReportReason())
	}
	return err
}

// fields are the header fields unwrapping needs; the others are skipped without being copied.
type fields struct {
	contentType, encoding, disposition, subject string
}

// slot returns where a field's value goes, or nil for a field that is not needed or was seen
// before (the first occurrence wins).
func (f *fields) slot(name []byte) *string {
	var p *string
	switch {
	case bytes.EqualFold(name, []byte("Content-Type")):
		p = &f.contentType
	case bytes.EqualFold(name, []byte("Content-Transfer-Encoding")):
		p = &f.encoding
	case bytes.EqualFold(name, []byte("Content-Disposition")):
		p = &f.disposition
	case bytes.EqualFold(name, []byte("Subject")):
		p = &f.subject
	}
	if p == nil || *p != "" {
		return nil
	}
	return p
}

// header splits an entity into its header fields and body. The fields are parsed here rather
// than by net/textproto, which refuses what real reporters send: a line of spaces as the
// blank line, or field names outside the HTTP token set.
func (m *message) header(b []byte) (fields, []byte, error) {
	var f fields
	hdrEnd, bodyStart := scanHeader(b)
	if hdrEnd > maxHeaderBytes {
		return f, nil, fmt.Errorf("%s: %w: e-mail header block over %s", m.path, ErrLimit, size(maxHeaderBytes))
	}
	var cur *string
	for line := range bytes.Lines(b[:hdrEnd]) {
		line = trimEOL(line)
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil { // folded: RFC 5322 unfolding, with the line's own white space trimmed
				*cur += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		if cur = f.slot(bytes.TrimRight(k, " \t")); cur != nil {
			*cur = string(bytes.TrimSpace(v))
		}
	}
	return f, b[bodyStart:], nil
}

// trimMbox drops blank lines and an mbox "From " separator before the header.
func trimMbox(b []byte) []byte {
	b = bytes.TrimLeft(b, "\r\n")
	if bytes.HasPrefix(b, []byte("From ")) {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[i+1:]
		}
	}
	return b
}

func (m *message) noReportReason() string {
	if m.arf != "" {
		return fmt.Sprintf("ARF report of Feedback-Type %q is not a DMARC failure report", m.arf)
	}
	return "e-mail has no attachment or inline part holding a report"
}

// failureSubject recognises failure reports sent as plain text, without an ARF part (Exim).
func failureSubject(s string) bool {
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	s = strings.ToLower(s)
	return strings.Contains(s, "dmarc") && (strings.Contains(s, "failure") || strings.Contains(s, "forensic"))
}

// entity walks one MIME entity: a multipart container, or a leaf that is sniffed by content.
// num is the part number ("2", "2.1"), "" for the body of a single-part message.
func (m *message) entity(h fields, body []byte, num string, mpDepth int) error {
	mt, params := mediaType(h.contentType)
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		return m.multipart(body, params["boundary"], num, mpDepth+1)
	}
	switch {
	case mt == "text/rfc822-headers" || mt == "message/delivery-status" || mt == "message/disposition-notification":
		return nil // copies of headers and delivery notices, never reports
	case m.arf != "" && (mt == "message/rfc822" || mt == "message/global"):
		return nil // the original message of a non-DMARC ARF report
	}
	name := partName(h, params)
	seg := "body"
	if num != "" {
		seg = "part " + num
	}
	if name != "" {
		seg += " (" + name + ")"
	}
	n := node{data: body, path: join(m.path, seg), name: name, depth: m.depth, msgDepth: m.msgDepth, prose: isProse(mt)}
	if r, what := transferDecode(h.encoding, body); r != nil {
		n = m.w.stream(r, n, what)
		defer release(n)
	}
	if mt == "message/feedback-report" {
		return m.feedback(n)
	}
	return m.w.dispatch(n)
}

// isProse reports declared types whose content is for people (the mail text) or for mail
// software (signatures): such a part is handed out only if its bytes are a report or a container.
func isProse(mt string) bool {
	switch mt {
	case "application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature":
		return true
	}
	return mt == "" || strings.HasPrefix(mt, "text/")
}

func (m *message) multipart(body []byte, boundary, num string, mpDepth int) error {
	if mpDepth > m.w.lim.MaxDepth {
		return fmt.Errorf("%s: %w: multipart nesting deeper than %d", m.path, ErrLimit, m.w.lim.MaxDepth)
	}
	parts, found := splitMultipart(body, boundary, m.w.lim.MaxEntries-m.parts+1)
	if !found {
		return fmt.Errorf("%s: %w: multipart body has no delimiter line for boundary %q", m.path, ErrCorrupt, boundary)
	}
	for i, p := range parts {
		if m.parts++; m.parts > m.w.lim.MaxEntries {
			return fmt.Errorf("%s: %w: e-mail has more than %d MIME parts", m.path, ErrLimit, m.w.lim.MaxEntries)
		}
		sub := fmt.Sprint(i + 1)
		if num != "" {
			sub = num + "." + sub
		}
		h, pb, err := m.header(p)
		if err != nil {
			return err
		}
		if err := m.entity(h, pb, sub, mpDepth); err != nil {
			return err
		}
	}
	return nil
}

// feedback reads an ARF machine-readable part (RFC 5965) and ends the message walk when it
// reports a DMARC authentication failure.
func (m *message) feedback(n node) error {
	b, err := io.ReadAll(io.LimitReader(n.reader(), 64<<10))
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Feedback-Type") {
			continue
		}
		if v = strings.TrimSpace(v); strings.EqualFold(v, "auth-failure") {
			return errFailure
		}
		m.arf = v
	}
	return nil
}

// splitMultipart cuts a multipart body at its delimiter lines (RFC 2046 5.1.1), returning at
// most maxParts parts as sub-slices. A missing close delimiter is tolerated: the last part runs to
// the end, and any truncation shows in the layer inside it (base64, gzip, XML).
func splitMultipart(body []byte, boundary string, maxParts int) (parts [][]byte, found bool) {
	delim := []byte("--" + boundary)
	start := -1
	for pos := 0; len(parts) < maxParts; {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + len(delim)
		lineEnd := len(body)
		if j := bytes.IndexByte(body[pos:], '\n'); j >= 0 {
			lineEnd = pos + j + 1
		}
		rest := bytes.TrimSpace(body[pos:lineEnd])
		if i > 0 && body[i-1] != '\n' || len(rest) > 0 && !bytes.HasPrefix(rest, []byte("--")) {
			continue // the boundary string inside a line, or as the prefix of a longer one
		}
		found = true
		if start >= 0 {
			end := i
			if end > 0 && body[end-1] == '\n' {
				end--
			}
			if end > 0 && body[end-1] == '\r' {
				end--
			}
			parts = append(parts, body[start:max(start, end)])
		}
		if len(rest) > 0 {
			return parts, true // close delimiter
		}
		start, pos = lineEnd, lineEnd
	}
	if start >= 0 && len(parts) < maxParts {
		parts = append(parts, body[start:])
	}
	return parts, found
}

// transferDecode undoes Content-Transfer-Encoding. Base64 is decoded with every space, tab
// and line break removed first, so that lines broken by CRLF or padded with spaces decode.
// It returns a nil reader for the identity encodings (7bit, 8bit, binary, unknown), whose
// body is used in place.
func transferDecode(cte string, b []byte) (io.Reader, string) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &spaceless{r: bytes.NewReader(b)}), "base64"
	case "quoted-printable":
		return quotedprintable.NewReader(bytes.NewReader(b)), "quoted-printable"
	}
	return nil, ""
}

// spaceless drops white space from a base64 body.
type spaceless struct{ r io.Reader }

func (s *spaceless) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// partName takes the file name from Content-Disposition (RFC 2231 filename* included), else
// from the Content-Type name parameter, decoding RFC 2047 encoded words.
func partName(h fields, ctParams map[string]string) string {
	_, dp := mediaType(h.disposition)
	name := dp["filename"]
	if name == "" {
		name = ctParams["name"]
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
		name = d
	}
	return cleanName(name)
}

// mediaType parses a Content-Type or Content-Disposition value. mime.ParseMediaType refuses
// duplicate or malformed parameters; the part must still be sniffed, so a lenient parse that
// keeps the first value of each parameter takes over.
func mediaType(v string) (string, map[string]string) {
	if mt, params, err := mime.ParseMediaType(v); err == nil {
		return mt, params
	}
	mt, rest, _ := strings.Cut(v, ";")
	params := map[string]string{}
	for rest != "" {
		var seg string
		seg, rest = cutParam(rest)
		k, val, ok := strings.Cut(seg, "=")
		k = strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(k), "*")))
		if _, dup := params[k]; !ok || k == "" || dup {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(val[1 : len(val)-1])
		}
		params[k] = val
	}
	return strings.ToLower(strings.TrimSpace(mt)), params
}

// cutParam splits at the first ';' outside a quoted string.
func cutParam(s string) (string, string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == ';' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
