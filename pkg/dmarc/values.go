package dmarc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Enum value sets. RFC 7489 Appendix C defines most; RFC 9990 adds disposition "pass", np,
// testing and discovery_method. Unknown values are kept, lower-cased, with a warning.
var (
	enumPolicy      = []string{"none", "quarantine", "reject"}
	enumAlignment   = []string{"r", "s"}
	enumYesNo       = []string{"n", "y"}
	enumDiscovery   = []string{"psl", "treewalk"}
	enumDisposition = []string{"none", "quarantine", "reject", "pass"}
	enumDMARCResult = []string{"pass", "fail"}
	enumDKIMResult  = []string{"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}
	enumSPFResult   = []string{"none", "pass", "fail", "softfail", "neutral", "temperror", "permerror"}
	enumSPFScope    = []string{"mfrom", "helo"}
	enumReason      = []string{"forwarded", "sampled_out", "trusted_forwarder", "mailing_list",
		"local_policy", "other"}
)

// isSpace matches the XML whitespace characters.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// lowerASCII lower-cases b in place (it is the parser's scratch buffer).
func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// enumValue lower-cases b and returns the matching constant, so the common values cost no
// allocation; ok is false for a non-empty value outside the set.
func enumValue(b []byte, set []string) (v string, ok bool) {
	b = lowerASCII(b)
	for _, k := range set {
		if string(b) == k {
			return k, true
		}
	}
	return string(b), len(b) == 0
}

// stripAngles removes the <> that some reporters put around report_id and email
// (the TA-dmarc issue #14 quirk), then trims again.
func stripAngles(s string) string {
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return strings.TrimSpace(s)
}

// policyDomain normalises policy_published/domain: DNS names compare case-insensitively and
// a trailing root dot is the same name.
func policyDomain(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// emailDomain is the part after the last '@', the org_name fallback.
func emailDomain(email string) string {
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		return strings.TrimSpace(email[i+1:])
	}
	return ""
}

var (
	errNoValue    = errors.New("missing")
	errOutOfRange = errors.New("out of range")
	errNotNumber  = errors.New("not a number")
)

// parseCount reads a non-negative decimal integer without allocating.
func parseCount(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errNoValue
	}
	if b[0] == '-' && len(b) > 1 && isDigits(b[1:]) {
		return 0, errOutOfRange
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotNumber
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, errOutOfRange
		}
		n = n*10 + d
	}
	return n, nil
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// parseUnix reads a date_range timestamp: Unix seconds, with an optional fraction that some
// reporters write ("1704067200.0") and that is truncated.
func parseUnix(b []byte) (int64, error) {
	if i := bytes.IndexByte(b, '.'); i >= 0 {
		if !isDigits(b[i+1:]) && i+1 < len(b) {
			return 0, errNotNumber
		}
		b = b[:i]
	}
	return parseCount(b)
}

// maxTimestamp is an absolute ceiling whatever MaxFutureSkew says: 13-digit millisecond
// timestamps land in the year 50,000 and beyond.
const maxTimestamp = 7258118400 // 2200-01-01T00:00:00Z

// checkTimestamp rejects what cannot be a report period: negative values, millisecond values
// and periods reaching more than skew into the future.
func checkTimestamp(name string, b []byte, now time.Time, skew time.Duration) (time.Time, error) {
	sec, err := parseUnix(b)
	switch {
	case errors.Is(err, errNoValue):
		return time.Time{}, fmt.Errorf("%w: no date range (empty <%s>)", ErrInvalid, name)
	case errors.Is(err, errNotNumber):
		return time.Time{}, fmt.Errorf("%w: invalid date range: <%s> %q is not a Unix timestamp",
			ErrInvalid, name, clip(b))
	case err != nil:
		return time.Time{}, fmt.Errorf("%w: timestamp out of range: <%s> %q", ErrInvalid, name, clip(b))
	}
	t := time.Unix(sec, 0).UTC()
	if sec > maxTimestamp || t.After(now.Add(skew)) {
		return time.Time{}, fmt.Errorf("%w: timestamp out of range: <%s> %s is more than %s in the future",
			ErrInvalid, name, clip(b), skew)
	}
	return t, nil
}

// sourceIP parses record/row/source_ip. netip already refuses leading-zero IPv4 octets,
// prefixes and garbage; zones are refused here because a report's address has no interface.
// IPv4-mapped IPv6 is unmapped so each address has one canonical form.
func sourceIP(b []byte) (netip.Addr, error) {
	ip, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, errors.New("address has a zone")
	}
	return ip.Unmap(), nil
}

// clip bounds what of a hostile value ends up in an error or warning message.
func clip(b []byte) string {
	const n = 64
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
