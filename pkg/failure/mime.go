package failure

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// Field is one header field, unfolded, in the order sent.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// header is a parsed header block.
type header []Field

func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func (h header) all(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) && f.Value != "" {
			out = append(out, f.Value)
		}
	}
	return out
}

// maxFields bounds the header fields kept from one block; real ones have a few dozen.
const maxFields = 500

// parseHeader splits an entity into its header fields and its body. It is as liberal as the
// mail readers reporters test with: a line of only white space ends the header (Lotus Notes
// sends one), and so does the first line that is no field, which then starts the body.
func parseHeader(b []byte) (header, []byte) {
	var h header
	off := 0
	for off < len(b) {
		next := len(b)
		if i := bytes.IndexByte(b[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		line := strings.TrimRight(string(b[off:next]), "\r\n")
		switch {
		case strings.TrimSpace(line) == "":
			return h, b[next:]
		case line[0] == ' ' || line[0] == '\t':
			if len(h) == 0 {
				return h, b[off:]
			}
			h[len(h)-1].Value = strings.TrimSpace(h[len(h)-1].Value + " " + strings.TrimSpace(line))
		default:
			name, value, ok := strings.Cut(line, ":")
			name = strings.TrimRight(name, " \t")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return h, b[off:]
			}
			if len(h) < maxFields {
				h = append(h, Field{Name: name, Value: strings.TrimSpace(value)})
			}
		}
		off = next
	}
	return h, nil
}

// entity is one MIME leaf: its declared type, header and decoded body.
type entity struct {
	mediaType string
	h         header
	body      []byte
}

// maxParts and maxDepth bound the walk of one report message.
const (
	maxParts = 100
	maxDepth = 5
)

// leaves walks a message's MIME tree and returns its leaves. message/rfc822 parts are leaves
// (the sample message), not walked into.
func leaves(h header, body []byte) []entity {
	var out []entity
	var walk func(h header, body []byte, depth int)
	walk = func(h header, body []byte, depth int) {
		if len(out) >= maxParts {
			return
		}
		mt, params := mediaType(h.get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < maxDepth {
			for _, p := range splitMultipart(body, params["boundary"]) {
				ph, pb := parseHeader(p)
				walk(ph, pb, depth+1)
			}
			return
		}
		out = append(out, entity{mediaType: mt, h: h, body: decode(h.get("Content-Transfer-Encoding"), body)})
	}
	walk(h, body, 0)
	return out
}

// mediaType parses a Content-Type liberally: a malformed parameter list still yields the type
// and the boundary.
func mediaType(v string) (string, map[string]string) {
	if mt, params, err := mime.ParseMediaType(v); err == nil {
		return mt, params
	}
	mt, rest, _ := strings.Cut(v, ";")
	params := map[string]string{}
	for _, seg := range strings.Split(rest, ";") {
		k, val, ok := strings.Cut(seg, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := params[k]; ok && k != "" && !dup {
			params[k] = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	return strings.ToLower(strings.TrimSpace(mt)), params
}

// splitMultipart cuts a multipart body at its delimiter lines (RFC 2046 §5.1.1); a missing
// close delimiter is tolerated.
func splitMultipart(body []byte, boundary string) [][]byte {
	delim := "--" + boundary
	var parts [][]byte
	start := -1
	off := 0
	for off < len(body) && len(parts) < maxParts {
		next := len(body)
		if i := bytes.IndexByte(body[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		line := strings.TrimRight(string(body[off:next]), " \t\r\n")
		if strings.HasPrefix(line, delim) {
			rest := line[len(delim):]
			if rest == "" || rest == "--" {
				if start >= 0 {
					parts = append(parts, body[start:off])
				}
				if rest == "--" {
					return parts
				}
				start = next
			}
		}
		off = next
	}
	if start >= 0 && start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts
}

// decode undoes a Content-Transfer-Encoding; a body that does not decode is kept as sent.
func decode(cte string, b []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, b)
		out, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean)))
		if err == nil || len(out) > 0 {
			return out
		}
	case "quoted-printable":
		if out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b))); err == nil {
			return out
		}
	}
	return b
}

// decodeWords decodes RFC 2047 encoded words in a header value, leaving it as sent when they
// do not decode.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}
