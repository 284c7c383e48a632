package ingest

import (
	"strings"
	"unicode"
)

// maxNameBytes bounds a stored file name.
const maxNameBytes = 255

// CleanName makes a sender's file name a safe label: no directories, no control characters,
// no invisible formatting characters (bidirectional overrides such as U+202E, which make
// "report‮lmx.exe" read as "reportexe.xml", zero-width characters, line separators), valid
// UTF-8 of at most 255 bytes. Files are stored by id, so a name never reaches the file system;
// it is shown to people, who must see what it really says.
func CleanName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if len(s) > maxNameBytes {
		s = strings.ToValidUTF8(s[:maxNameBytes], "")
	}
	return s
}
