// Package apiparams reads the query parameters shared by the API's endpoints (the common
// filters, whole numbers), so every endpoint accepts the same values and rejects bad ones with
// the same 400 naming the parameter.
package apiparams

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/store"
)

// BadParam is the 400 for a query parameter; the detail names it (DESIGN.md), and the API's
// error handler renders it as an RFC 9457 problem.
func BadParam(name, format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, "parameter "+name+": "+fmt.Sprintf(format, args...))
}

const maxFilterDays = 3660

// Allowed values of the enumerated common filters.
var (
	resultValues      = []string{"pass", "fail"}
	dispositionValues = []string{"none", "quarantine", "reject", "pass"}
)

// Filter reads the common filters of list, rollup and export endpoints (DESIGN.md); an invalid
// value is a 400 naming the parameter.
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
		v := strings.ToLower(strings.TrimSpace(q(e.name)))
		if v == "" {
			continue
		}
		if !contains(e.set, v) {
			return f, BadParam(e.name, "want one of %s", strings.Join(e.set, ", "))
		}
		*e.dst = v
	}
	return f, nil
}

// readWindow sets Start/End from days (the last N days before now) or start/end (dates count
// whole days: end=2024-01-31 includes that day; or RFC 3339 instants).
func readWindow(f *store.Filter, days, start, end string, now time.Time) error {
	if days != "" {
		if start != "" || end != "" {
			return BadParam("days", "give either days or start/end, not both")
		}
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > maxFilterDays {
			return BadParam("days", "want a whole number from 1 to %d", maxFilterDays)
		}
		f.Start = now.UTC().AddDate(0, 0, -n)
		return nil
	}
	var err error
	if start != "" {
		if f.Start, err = DateOrTime(start, false); err != nil {
			return BadParam("start", "want a date (2006-01-02) or an RFC 3339 time")
		}
	}
	if end != "" {
		if f.End, err = DateOrTime(end, true); err != nil {
			return BadParam("end", "want a date (2006-01-02) or an RFC 3339 time")
		}
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.End.After(f.Start) {
		return BadParam("end", "must be after start")
	}
	return nil
}

// DateOrTime reads a day (an end day counts whole: end=2024-01-31 includes that day) or an RFC
// 3339 instant.
func DateOrTime(s string, isEnd bool) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if isEnd {
			return d.AddDate(0, 0, 1), nil
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	return t.UTC(), err
}

func contains(set []string, v string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
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

// Window reads days, or start and end, alone (for lists whose dates are not a report's period,
// such as when files were received): the same values and the same 400s as Filter's window.
func Window(c echo.Context, now time.Time) (start, end time.Time, err error) {
	var f store.Filter
	err = readWindow(&f, c.QueryParam("days"), c.QueryParam("start"), c.QueryParam("end"), now)
	return f.Start, f.End, err
}
