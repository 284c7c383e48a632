package unwrap

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen caps a sanitised name; real report names stay well below it.
const maxNameLen = 200

// cleanName turns a name taken from the input (zip entry, MIME filename, gzip header) into a
// label that is safe to show and log: its base name, valid UTF-8, without control or bidi
// characters, at most maxNameLen bytes. It is never used as a path (SECURITY-CASES A.3).
func cleanName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if s == "." || s == ".." {
		return ""
	}
	for len(s) > maxNameLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
