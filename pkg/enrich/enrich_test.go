package enrich

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/enrich/dnstest"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/geo/geotest"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// zone is the test DNS server's data for the resolver and cache tests.
func zone(t *testing.T) *dnstest.Server {
	s := dnstest.Start(t)
	s.Mail("209.85.220.41", "mail-sor-f41.google.com")
	s.Mail("2a00:1450:4864:20::12b", "mail-ed1-x52b.google.com")
	s.PTR("198.51.100.7", "spoof.example.net") // does not resolve back
	s.Host("spoof.example.net", "198.51.100.99")
	s.PTR("198.51.100.8", "bad-first.example.org", "mail.example.org") // second name confirms
	s.Host("mail.example.org", "198.51.100.8")
	s.PTR("198.51.100.9", "c-198-51-100-9.hsd1.example-isp.net")
	s.Host("c-198-51-100-9.hsd1.example-isp.net", "198.51.100.9")
	s.Set("198.51.100.10", dnstest.ServFail)
	s.Set("198.51.100.11", dnstest.Silent)
	s.Mail("198.51.100.12", "big.example.com")
	s.Set("198.51.100.12", dnstest.Truncate)
	s.PTR("198.51.100.13", "fwd-timeout.example.com")
	s.Set("fwd-timeout.example.com", dnstest.Silent)
	s.Host("nodata.example.com", "198.51.100.77")
	return s
}

func TestResolverLookup(t *testing.T) {
	t.Parallel()
	s := zone(t)
	r, err := NewResolver(s.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip        string
		name      string
		confirmed bool
		status    string
	}{
		{"209.85.220.41", "mail-sor-f41.google.com", true, StatusOK},
		{"::ffff:209.85.220.41", "mail-sor-f41.google.com", true, StatusOK},
		{"2a00:1450:4864:20::12b", "mail-ed1-x52b.google.com", true, StatusOK},
		{"198.51.100.7", "spoof.example.net", false, StatusOK},
		{"198.51.100.8", "mail.example.org", true, StatusOK},
		{"198.51.100.10", "", false, StatusServFail},
		{"198.51.100.11", "", false, StatusTimeout},
		{"198.51.100.12", "big.example.com", true, StatusOK},
		{"198.51.100.13", "fwd-timeout.example.com", false, StatusOK},
		{"198.51.100.99", "", false, StatusNXDomain},
	}
	for _, tc := range tests {
		got := r.Lookup(context.Background(), netip.MustParseAddr(tc.ip))
		if got.Name != tc.name || got.Confirmed != tc.confirmed || got.Status != tc.status {
			t.Errorf("%s: got %+v, want name %q confirmed %v status %s", tc.ip, got, tc.name, tc.confirmed, tc.status)
		}
	}
	if s.TCP.Load() == 0 {
		t.Errorf("the truncated answer was not asked again over TCP")
	}
}

func TestBaseDomain(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"mail-sor-f41.google.com.":                            "google.com",
		"mail-db8eur05on2100.outbound.protection.outlook.com": "outlook.com",
		"a8-31.smtp-out.amazonses.com":                        "amazonses.com",
		"mx.example.co.uk":                                    "example.co.uk",
		"co.uk":                                               "",
		"":                                                    "",
	} {
		if got := BaseDomain(host); got != want {
			t.Errorf("BaseDomain(%q) = %q, want %q", host, got, want)
		}
	}
}

// geoFiles writes a City and an ASN database for the test addresses.
func geoFiles(t testing.TB, dir string) (city, asn string) {
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, []geotest.City{
		{Network: "209.85.128.0/17", Country: "US", CountryName: "United States", City: "Mountain View", Region: "California", Lat: 37.4, Lon: -122.1, TimeZone: "America/Los_Angeles"},
		{Network: "198.51.100.0/24", Country: "DE", CountryName: "Germany", City: "Berlin", Lat: 52.5, Lon: 13.4, TimeZone: "Europe/Berlin"},
	})
	geotest.WriteASN(t, asn, []geotest.ASN{
		{Network: "209.85.128.0/17", Number: 15169, Org: "GOOGLE"},
		{Network: "2a00:1450::/32", Number: 15169, Org: "GOOGLE"},
		{Network: "198.51.100.0/24", Number: 64500, Org: "EXAMPLE-NET"},
	})
	return city, asn
}

// zoneResolver is a resolver asking the test zone's server, returned with it.
func zoneResolver(t *testing.T) (*dnstest.Server, *Resolver) {
	t.Helper()
	s := zone(t)
	r, err := NewResolver(s.Addr, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestEnrichCache(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		s, r := zoneResolver(t)
		city, asn := geoFiles(t, t.TempDir())
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		svc := New(Deps{Store: st, Resolver: r, Geo: geo.Open(geo.Config{CityPath: city, ASNPath: asn}, testenv.Logger()),
			Log: testenv.Logger(), Now: func() time.Time { return now }})
		ips := []netip.Addr{
			netip.MustParseAddr("209.85.220.41"), netip.MustParseAddr("2a00:1450:4864:20::12b"),
			netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("198.51.100.10"),
			netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("::ffff:198.51.100.7"),
		}
		stats, err := svc.Enrich(ctx, ips)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Addresses != 6 || stats.DNSLookups != 6 || stats.Written != 6 {
			t.Fatalf("first run: %+v", stats)
		}
		got, err := svc.load(ctx, ips)
		if err != nil {
			t.Fatal(err)
		}
		g := got[netip.MustParseAddr("209.85.220.41")]
		if g == nil || g.PTR != "mail-sor-f41.google.com" || !g.PTRConfirmed || g.BaseDomain != "google.com" || g.ASN != 15169 ||
			g.Country != "US" || g.City != "Mountain View" || g.Latitude == nil || g.TimeZone != "America/Los_Angeles" {
			t.Fatalf("google row: %+v", g)
		}
		if want := now.Add(7 * 24 * time.Hour).Unix(); g.DNSExpires != want {
			t.Errorf("positive TTL: expires %d, want %d", g.DNSExpires, want)
		}
		if want := now.Add(90 * 24 * time.Hour).Unix(); g.GeoExpires != want {
			t.Errorf("geo TTL: expires %d, want %d", g.GeoExpires, want)
		}
		v6 := got[netip.MustParseAddr("2a00:1450:4864:20::12b")]
		if v6 == nil || !v6.PTRConfirmed || v6.ASN != 15169 || v6.Country != "" {
			t.Errorf("IPv6 row: %+v", v6)
		}
		if sp := got[netip.MustParseAddr("198.51.100.7")]; sp == nil || sp.PTRConfirmed || sp.PTR != "spoof.example.net" {
			t.Errorf("unconfirmed row: %+v", sp)
		}
		if isp := got[netip.MustParseAddr("198.51.100.9")]; isp == nil || !isp.Residential {
			t.Errorf("residential row: %+v", isp)
		}
		for ip, status := range map[string]string{"198.51.100.10": StatusServFail, "198.51.100.11": StatusTimeout} {
			row := got[netip.MustParseAddr(ip)]
			if row == nil || row.DNSStatus != status || row.PTR != "" || row.DNSExpires != now.Add(24*time.Hour).Unix() || row.Country != "DE" {
				t.Errorf("%s: %+v, want status %s, negative TTL, geo filled", ip, row, status)
			}
		}

		// Within the negative TTL nothing is asked again.
		q0 := s.Queries.Load()
		now = now.Add(23 * time.Hour)
		if stats, err = svc.Enrich(ctx, ips); err != nil || stats.Fresh != 6 || stats.Written != 0 {
			t.Fatalf("second run: %+v %v", stats, err)
		}
		if s.Queries.Load() != q0 {
			t.Errorf("fresh entries were looked up again")
		}
		// After it, the negative entries are; the positive ones still are not.
		now = now.Add(2 * time.Hour)
		if stats, err = svc.Enrich(ctx, ips); err != nil || stats.DNSLookups != 2 || stats.Fresh != 4 { // the SERVFAIL and the timeout
			t.Fatalf("after the negative TTL: %+v %v", stats, err)
		}
	})
}

// TestEnrichWithoutGeo: with no databases the DNS part is stored and the geo part is looked up
// as soon as a database appears.
func TestEnrichWithoutGeo(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		_, r := zoneResolver(t)
		dir := t.TempDir()
		gdb := geo.Open(geo.Config{CityPath: filepath.Join(dir, "city.mmdb"), ASNPath: filepath.Join(dir, "asn.mmdb"), CheckEvery: -1}, testenv.Logger())
		svc := New(Deps{Store: st, Resolver: r, Geo: gdb, Log: testenv.Logger()})
		ip := netip.MustParseAddr("209.85.220.41")
		if _, err := svc.Enrich(ctx, []netip.Addr{ip}); err != nil {
			t.Fatal(err)
		}
		got, _ := svc.load(ctx, []netip.Addr{ip})
		if g := got[ip]; g == nil || g.PTR == "" || g.ASN != 0 || g.GeoExpires != 0 {
			t.Fatalf("without databases: %+v", g)
		}
		geoFiles(t, dir)
		stats, err := svc.Enrich(ctx, []netip.Addr{ip})
		if err != nil || stats.GeoLookups != 1 || stats.DNSLookups != 0 {
			t.Fatalf("after the databases appeared: %+v %v", stats, err)
		}
		got, _ = svc.load(ctx, []netip.Addr{ip})
		if g := got[ip]; g.ASN != 15169 || g.Country != "US" || g.PTR != "mail-sor-f41.google.com" {
			t.Fatalf("after the databases appeared: %+v", g)
		}
	})
}
