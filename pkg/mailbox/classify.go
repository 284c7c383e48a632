package mailbox

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/vigilhq/vigil/pkg/unwrap"
)

// Classify tells whether a message holds a report, so the sink can file it under the archive
// (it does) or the invalid folder (it does not, with reason saying why).
//
// Recognised report types all count, not only DMARC aggregate reports: a DMARC failure report
// (RFC 6591) or an SMTP TLS report (RFC 8460) is mail Vigil will parse once those types are
// supported, and its original is kept, so it belongs in the archive, not among the invalid.
// An XML or unrecognised part counts when a <feedback> element appears anywhere in it: unwrap
// only looks at a part's first 16 KiB, and the parser reads a report behind a long stray
// wrapper. What was found before an unwrapping error still counts (the pipeline stores it).
// Everything else, spam and bounces included, is invalid, and will not be read again.
func Classify(data []byte, lim unwrap.Limits) (hasReport bool, reason string) {
	var found []string
	var other []string
	err := unwrap.Walk(data, lim, func(p unwrap.Part) error {
		switch p.Format {
		case unwrap.FormatDMARC:
			found = append(found, "DMARC aggregate report")
		case unwrap.FormatFailure:
			found = append(found, "DMARC failure report")
		case unwrap.FormatTLSRPT:
			found = append(found, "SMTP TLS report")
		case unwrap.FormatXML, unwrap.FormatUnknown:
			ok, err := holdsFeedback(p.Body)
			if err != nil {
				return err
			}
			if ok {
				found = append(found, "possible DMARC aggregate report ("+string(p.Format)+" with <feedback>)")
			} else {
				other = append(other, describe(p))
			}
		default:
			other = append(other, describe(p))
		}
		return nil
	})
	if len(found) > 0 {
		return true, summarise(found)
	}
	switch {
	case err != nil:
		return false, "no report: " + err.Error()
	case len(other) > 0:
		return false, "no report: found only " + strings.Join(other, ", ")
	}
	return false, "no report"
}

func describe(p unwrap.Part) string {
	what := map[unwrap.Format]string{unwrap.FormatXML: "XML that is not a DMARC report",
		unwrap.FormatJSON: "JSON that is not an SMTP TLS report", unwrap.FormatUnknown: "unrecognised content"}[p.Format]
	if what == "" {
		what = string(p.Format)
	}
	return fmt.Sprintf("%s (%s)", what, p.Path)
}

// summarise counts report kinds: "2 DMARC aggregate report, 1 SMTP TLS report".
func summarise(found []string) string {
	var order []string
	n := map[string]int{}
	for _, f := range found {
		if n[f] == 0 {
			order = append(order, f)
		}
		n[f]++
	}
	parts := make([]string, len(order))
	for i, f := range order {
		parts[i] = fmt.Sprintf("%d %s", n[f], f)
	}
	return strings.Join(parts, ", ")
}

// holdsFeedback streams a part looking for a <feedback> start tag, with or without a namespace
// prefix, across read boundaries.
func holdsFeedback(r io.Reader) (bool, error) {
	const tail = 64
	buf := make([]byte, 32<<10+tail)
	carry := 0
	for {
		n, err := r.Read(buf[carry:])
		window := buf[:carry+n]
		if feedbackTag(window) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		carry = copy(buf, window[max(0, len(window)-tail):])
	}
}

func feedbackTag(b []byte) bool {
	for {
		i := bytes.Index(b, []byte("feedback"))
		if i < 0 {
			return false
		}
		// preceded by '<' or by '<prefix:'
		j := i - 1
		if j >= 0 && b[j] == ':' {
			for j--; j >= 0 && isNameByte(b[j]); j-- {
			}
		}
		end := i + len("feedback")
		if j >= 0 && b[j] == '<' && (end == len(b) || !isNameByte(b[end])) {
			return true
		}
		b = b[i+1:]
	}
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
