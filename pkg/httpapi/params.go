package httpapi

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/store"
)

const (
	defaultPageSize = 50
	maxPageSize     = 500
	maxDays         = 3660
)

func pageParams(c echo.Context) (store.Page, error) {
	p := store.Page{Number: 1, Size: defaultPageSize}
	if v := c.QueryParam("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, badParam("page", "want a whole number from 1")
		}
		p.Number = n
	}
	if v := c.QueryParam("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, badParam("page_size", "want a whole number from 1 to %d", maxPageSize)
		}
		p.Size = n
	}
	return p, nil
}

func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id < 1 {
		return 0, badParam(name, "want a positive whole number")
	}
	return id, nil
}

var enumValues = map[string][]string{
	"dkim_result": {"pass", "fail"},
	"spf_result":  {"pass", "fail"},
	"disposition": {"none", "quarantine", "reject", "pass"},
}

// filterParams reads the common filters (DESIGN.md) and rejects bad values naming them.
func filterParams(c echo.Context, now time.Time) (store.Filter, error) {
	var f store.Filter
	f.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.QueryParam("domain"))), ".")
	f.OrgName = strings.TrimSpace(c.QueryParam("org_name"))
	days, start, end := c.QueryParam("days"), c.QueryParam("start"), c.QueryParam("end")
	if days != "" && (start != "" || end != "") {
		return f, badParam("days", "give either days or start/end, not both")
	}
	if days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > maxDays {
			return f, badParam("days", "want a whole number from 1 to %d", maxDays)
		}
		f.Start = now.UTC().AddDate(0, 0, -n)
	}
	var err error
	if start != "" {
		if f.Start, err = parseDate(start, false); err != nil {
			return f, badParam("start", "want a date (2006-01-02) or an RFC 3339 time")
		}
	}
	if end != "" {
		if f.End, err = parseDate(end, true); err != nil {
			return f, badParam("end", "want a date (2006-01-02) or an RFC 3339 time")
		}
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.End.After(f.Start) {
		return f, badParam("end", "must be after start")
	}
	if v := strings.TrimSpace(c.QueryParam("source_ip")); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return f, badParam("source_ip", "want an IPv4 or IPv6 address")
		}
		f.SourceIP = a.Unmap()
	}
	if v := strings.TrimSpace(c.QueryParam("source_ip_range")); v != "" {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return f, badParam("source_ip_range", "want a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32")
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		f.SourceRange = p.Masked()
	}
	for name, dst := range map[string]*string{"dkim_result": &f.DKIM, "spf_result": &f.SPF, "disposition": &f.Disposition} {
		v := strings.ToLower(strings.TrimSpace(c.QueryParam(name)))
		if v == "" {
			continue
		}
		ok := false
		for _, allowed := range enumValues[name] {
			ok = ok || v == allowed
		}
		if !ok {
			return f, badParam(name, "want one of %s", strings.Join(enumValues[name], ", "))
		}
		*dst = v
	}
	return f, nil
}

// parseDate reads a day (an end day counts whole: end=2024-01-31 includes that day) or an
// RFC 3339 instant.
func parseDate(s string, isEnd bool) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if isEnd {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	return t.UTC(), err
}
