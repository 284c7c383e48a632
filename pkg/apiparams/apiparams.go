// Package apiparams reads the query parameters shared by the API's endpoints (the common
// filters, whole numbers), so every endpoint accepts the same values and rejects bad ones with
// the same 400 naming the parameter. It also declares which parameters each endpoint takes
// (Set): an unknown or repeated parameter is a 400 instead of being silently ignored.
package apiparams

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/store"
)

// Kind names a kind of client error. The API's error handler turns it into the problem's
// stable type URI (pkg/httpapi), so clients can branch on the kind without parsing the detail.
// It travels as the Internal error of an *echo.HTTPError, which keeps every caller that
// returns the 400 unchanged.
type Kind string

// The kinds this package produces.
const (
	KindBadParameter      Kind = "bad-parameter"      // a value the endpoint cannot take
	KindUnknownParameter  Kind = "unknown-parameter"  // a query parameter the endpoint does not take
	KindRepeatedParameter Kind = "repeated-parameter" // a single-valued parameter given twice
	KindUnknownField      Kind = "unknown-field"      // a JSON body field the request does not take
)

func (k Kind) Error() string { return string(k) }

// Fail is a 400 of the kind given; the detail should start with "parameter NAME:".
func Fail(kind Kind, detail string) error {
	return echo.NewHTTPError(http.StatusBadRequest, detail).SetInternal(kind)
}

// BadParam is the 400 for a query parameter; the detail names it (DESIGN.md), and the API's
// error handler renders it as an RFC 9457 problem of type bad-parameter.
func BadParam(name, format string, args ...any) error {
	return Fail(KindBadParameter, "parameter "+name+": "+fmt.Sprintf(format, args...))
}

// MaxFilterDays bounds days=N, and the span of the daily series an answer may hold.
const MaxFilterDays = 3660

// maxInstant is the latest instant a window may name. An end date of 9999-12-31 counts that
// whole day; its exclusive end, 10000-01-01, is not a time every database compares correctly
// (SQLite compares timestamps as text), so ends are clamped here.
var maxInstant = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)

// minInstant is the earliest: a time before year 1 cannot be written as RFC 3339.
var minInstant = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// Allowed values of the enumerated common filters. They are compared exactly, as the
// OpenAPI enums say: a client validating against the spec sends them lower-case.
var (
	resultValues      = []string{"pass", "fail"}
	dispositionValues = []string{"none", "quarantine", "reject", "pass"}
)

// FilterNames are the common filters (DESIGN.md), FilterSet an endpoint taking only them.
var (
	FilterNames = []string{"domain", "org_name", "days", "start", "end", "source_ip", "source_ip_range", "dkim_result", "spf_result", "disposition", "sender", "country", "asn"}
	FilterSet   = Declare(FilterNames...)
	// PageNames are the paging parameters of list endpoints.
	PageNames = []string{"page", "page_size"}
)

// Set is the query parameters an endpoint takes, each at most once. The zero Set takes none.
type Set struct {
	names []string // sorted
}

// Declare is the set of names.
func Declare(names ...string) Set {
	s := Set{names: slices.Clone(names)}
	slices.Sort(s.names)
	s.names = slices.Compact(s.names)
	return s
}

// With is the set plus names.
func (s Set) With(names ...string) Set { return Declare(append(slices.Clone(s.names), names...)...) }

// Names lists the set, sorted.
func (s Set) Names() []string { return slices.Clone(s.names) }

// Check refuses a query that names a parameter outside the set (KindUnknownParameter: a
// misspelt filter would otherwise answer unfiltered) or gives one more than once
// (KindRepeatedParameter: which value counts would be a guess). Every name is checked, so the
// detail names all the unknown ones at once.
func (s Set) Check(c echo.Context) error {
	q := c.QueryParams()
	var unknown []string
	for name := range q {
		if _, ok := slices.BinarySearch(s.names, name); !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		takes := "no query parameters"
		if len(s.names) > 0 {
			takes = strings.Join(s.names, ", ")
		}
		what := "parameter %s: not a parameter of this endpoint (it takes %s)"
		if len(unknown) > 1 {
			what = "parameters %s: not parameters of this endpoint (it takes %s)"
		}
		return Fail(KindUnknownParameter, fmt.Sprintf(what, strings.Join(quoted(unknown), ", "), takes))
	}
	for _, name := range s.names {
		if n := len(q[name]); n > 1 {
			return Fail(KindRepeatedParameter, fmt.Sprintf("parameter %s: given %d times; give it once", name, n))
		}
	}
	return nil
}

// quoted shows a name the client sent; an empty or odd one stays visible.
func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			n = strconv.Quote(n)
		}
		out[i] = n
	}
	return out
}

// Filter reads the common filters of list, rollup and export endpoints (DESIGN.md); an invalid
// value is a 400 naming the parameter. It does not check for unknown parameters: the endpoint's
// Set does.
func Filter(c echo.Context, now time.Time) (store.Filter, error) {
	q := func(name string) string { return c.QueryParam(name) }
	f := store.Filter{
		Domain:  strings.TrimSuffix(strings.ToLower(strings.TrimSpace(q("domain"))), "."),
		OrgName: strings.TrimSpace(q("org_name")),
	}
	if err := readWindow(&f, q("days"), q("start"), q("end"), now); err != nil {
		return f, err
	}
	if v := strings.TrimSpace(q("source_ip")); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return f, BadParam("source_ip", "want an IPv4 or IPv6 address")
		}
		f.SourceIP = a.Unmap()
	}
	if v := strings.TrimSpace(q("source_ip_range")); v != "" {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return f, BadParam("source_ip_range", "want a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32")
		}
		// ::ffff:192.0.2.0/120 is 192.0.2.0/24: addresses are stored unmapped.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		f.SourceRange = p.Masked()
	}
	for _, e := range []struct {
		name string
		dst  *string
		set  []string
	}{{"dkim_result", &f.DKIM, resultValues}, {"spf_result", &f.SPF, resultValues}, {"disposition", &f.Disposition, dispositionValues}} {
		v := q(e.name)
		if v == "" {
			continue
		}
		if !slices.Contains(e.set, v) {
			return f, BadParam(e.name, "want one of %s (lower-case)", strings.Join(e.set, ", "))
		}
		*e.dst = v
	}
	return f, readEnrich(&f, q("sender"), q("country"), q("asn"))
}

// MaxSenderName bounds the sender filter: a named sender is at most 100 characters.
const MaxSenderName = 100

// readEnrich reads the filters on what enrichment found: a named sender (case-insensitive,
// as /api/senders names it), a country (ISO 3166 alpha-2), an AS number (15169 or AS15169).
func readEnrich(f *store.Filter, sender, country, asn string) error {
	if v := strings.TrimSpace(sender); v != "" {
		if len(v) > MaxSenderName || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return BadParam("sender", "want a sender name as /api/senders lists it, at most %d characters", MaxSenderName)
		}
		f.Sender = strings.ToLower(v)
	}
	if v := strings.TrimSpace(country); v != "" {
		if len(v) != 2 || !isLetters(v) {
			return BadParam("country", "want an ISO 3166 alpha-2 country code such as DE")
		}
		f.Country = strings.ToUpper(v)
	}
	if v := strings.TrimSpace(asn); v != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(v), "AS"), 10, 32)
		if err != nil || n == 0 {
			return BadParam("asn", "want an AS number from 1 to 4294967295, such as 15169 or AS15169")
		}
		f.ASN = int64(n)
	}
	return nil
}

func isLetters(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// readWindow sets Start/End from days (the last N days before now) or start/end (dates count
// whole days: end=2024-01-31 includes that day; or RFC 3339 instants).
func readWindow(f *store.Filter, days, start, end string, now time.Time) error {
	if days != "" {
		if start != "" || end != "" {
			return BadParam("days", "give either days or start/end, not both")
		}
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > MaxFilterDays {
			return BadParam("days", "want a whole number from 1 to %d", MaxFilterDays)
		}
		f.Start = now.UTC().AddDate(0, 0, -n)
		return nil
	}
	var err error
	if start != "" {
		if f.Start, err = DateOrTime(start, false); err != nil {
			return BadParam("start", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	if end != "" {
		if f.End, err = DateOrTime(end, true); err != nil {
			return BadParam("end", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.End.After(f.Start) {
		return BadParam("end", "must be after start")
	}
	return nil
}

// DateOrTime reads a day (an end day counts whole: end=2024-01-31 includes that day) or an RFC
// 3339 instant, in UTC, between 0001-01-01 and the end of 9999-12-31: an end on the last day
// (or an offset pushing an instant past it) is clamped to that last instant rather than
// overflowing into year 10000.
func DateOrTime(s string, isEnd bool) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err == nil {
		if isEnd {
			t = t.AddDate(0, 0, 1)
		}
	} else if t, err = time.Parse(time.RFC3339, s); err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	switch {
	case t.After(maxInstant):
		t = maxInstant
	case t.Before(minInstant):
		t = minInstant
	}
	return t, nil
}

// Int reads an optional whole number in [lo, hi].
func Int(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(c.QueryParam(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, BadParam(name, "want a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// Paging reads page (from 1) and page_size (1 to 500, default 50), the paging of the list
// endpoints (DESIGN.md).
func Paging(c echo.Context) (page, size int, err error) {
	if page, err = Int(c, "page", 1, 1, 1_000_000); err != nil {
		return 0, 0, err
	}
	if size, err = Int(c, "page_size", 50, 1, 500); err != nil {
		return 0, 0, err
	}
	return page, size, nil
}

// Window reads days, or start and end, alone (for lists whose dates are not a report's period,
// such as when files were received): the same values and the same 400s as Filter's window.
func Window(c echo.Context, now time.Time) (start, end time.Time, err error) {
	var f store.Filter
	err = readWindow(&f, c.QueryParam("days"), c.QueryParam("start"), c.QueryParam("end"), now)
	return f.Start, f.End, err
}
