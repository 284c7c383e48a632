package analytics_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Exact and CIDR source filters, by hand: each address carries a distinct power of two, so a
// total names the addresses inside the filter.
func TestCIDRFilters(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		d := time.Date(2024, 5, 10, 0, 0, 0, 0, time.UTC)
		one := func(id, domain string, begin time.Time, recs ...dmarc.Record) store.Parsed {
			return store.Parsed{Header: &dmarc.Report{OrgName: "google.com", ReportID: id, DateBegin: begin, DateEnd: begin.AddDate(0, 0, 1),
				Policy: dmarc.Policy{Domain: domain, P: "reject"}}, Records: recs}
		}
		pass := func(ip string, n int64) dmarc.Record { return rec(ip, n, "none", "pass", "pass", "cidr.example") }
		ids := save(t, st, []store.Parsed{
			one("a", "cidr.example", d, pass("192.0.2.1", 1), pass("192.0.2.2", 2), pass("192.0.3.1", 4), pass("10.0.0.1", 8),
				pass("2001:db8:1:1::1", 16), pass("2001:db8:1:2::1", 32), pass("2001:db8:2::1", 64), pass("::ffff:198.51.100.7", 128)),
			one("b", "other.example", d.AddDate(0, 0, 1), pass("192.0.2.1", 256)),
		})
		if err := newRollup(st).Apply(context.Background(), ids); err != nil {
			t.Fatal(err)
		}
		srv := newServer(st, nil, func() time.Time { return testNow })
		cases := []struct {
			filter  string
			total   int64
			sources []string // top sources, most messages first
			reports int64
		}{
			{"source_ip=192.0.2.1", 257, []string{"192.0.2.1"}, 2},
			{"source_ip=192.0.2.1&domain=cidr.example", 1, []string{"192.0.2.1"}, 1},
			{"source_ip_range=192.0.2.1/32", 257, []string{"192.0.2.1"}, 2},
			{"source_ip_range=192.0.2.0/24", 259, []string{"192.0.2.1", "192.0.2.2"}, 2},
			{"source_ip_range=192.0.2.0/24&start=2024-05-10&end=2024-05-10", 3, []string{"192.0.2.2", "192.0.2.1"}, 1},
			{"source_ip_range=192.0.0.0/16", 263, []string{"192.0.2.1", "192.0.3.1", "192.0.2.2"}, 2},
			{"source_ip_range=0.0.0.0/0", 399, []string{"192.0.2.1", "198.51.100.7", "10.0.0.1", "192.0.3.1", "192.0.2.2"}, 2},
			{"source_ip_range=2001:db8:1:1::1/128", 16, []string{"2001:db8:1:1::1"}, 1},
			{"source_ip=2001:db8:1:1::1", 16, []string{"2001:db8:1:1::1"}, 1},
			{"source_ip_range=2001:db8:1::/48", 48, []string{"2001:db8:1:2::1", "2001:db8:1:1::1"}, 1},
			{"source_ip_range=2001:db8::/32", 112, []string{"2001:db8:2::1", "2001:db8:1:2::1", "2001:db8:1:1::1"}, 1},
			// Addresses are stored unmapped: the IPv4-mapped spellings select the IPv4 address.
			{"source_ip=::ffff:198.51.100.7", 128, []string{"198.51.100.7"}, 1},
			{"source_ip_range=::ffff:198.51.100.0/120", 128, []string{"198.51.100.7"}, 1},
			{"source_ip_range=198.51.100.7/32", 128, []string{"198.51.100.7"}, 1},
			// IPv4 is kept in its IPv4-mapped 16-byte form, so ::/0 spans it too, as in the reports list.
			{"source_ip_range=::/0", 511, []string{"192.0.2.1", "198.51.100.7", "2001:db8:2::1", "2001:db8:1:2::1", "2001:db8:1:1::1", "10.0.0.1", "192.0.3.1", "192.0.2.2"}, 2},
			{"source_ip_range=203.0.113.0/24", 0, nil, 0},
			{"source_ip=192.0.2.1&source_ip_range=10.0.0.0/8", 0, nil, 0},
		}
		for _, c := range cases {
			q, _ := url.ParseQuery(c.filter)
			var sum analytics.Summary
			srv.get(t, "/api/rollup/summary", q, &sum)
			var src apiparams.List[analytics.Source]
			srv.get(t, "/api/rollup/sources", q, &src)
			var got []string
			for _, s := range src.Items {
				got = append(got, s.SourceIP)
			}
			if sum.TotalMessages != c.total || !slices.Equal(got, c.sources) || sum.Sources != int64(len(c.sources)) || sum.TotalReports != c.reports {
				t.Errorf("%s: %d messages, %d reports, %d sources %v; want %d, %d, %v", c.filter, sum.TotalMessages, sum.TotalReports,
					sum.Sources, got, c.total, c.reports, c.sources)
			}
			// The list's total counts every matching source, not only this page.
			if c.reports > 0 && src.Total != int64(len(c.sources)) {
				t.Errorf("%s: sources total %d, want %d", c.filter, src.Total, len(c.sources))
			}
		}
	})
}
