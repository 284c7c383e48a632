package store

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pkg/dmarc"
)

// The JSON columns are written by hand: encoding/json's reflection costs more than the rest of
// a record's insert, and these shapes are fixed. Reading uses encoding/json (see query.go).

func appendReasons(b []byte, rs []dmarc.Reason) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendObj(b, "type", r.Type, "comment", r.Comment)
	}
	return append(b, ']')
}

func appendDKIM(b []byte, rs []dmarc.DKIMResult) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendObj(b, "domain", r.Domain, "selector", r.Selector, "result", r.Result, "human_result", r.HumanResult)
	}
	return append(b, ']')
}

func appendSPF(b []byte, rs []dmarc.SPFResult) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendObj(b, "domain", r.Domain, "scope", r.Scope, "result", r.Result, "human_result", r.HumanResult)
	}
	return append(b, ']')
}

// appendObj writes {"k1":"v1",...} from alternating keys and values.
func appendObj(b []byte, kv ...string) []byte {
	b = append(b, '{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(append(appendString(b, kv[i]), ':'), kv[i+1])
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func jsonStrings(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // a []string always marshals
	return string(b)
}
