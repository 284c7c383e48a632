package senders

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/net/publicsuffix"
)

// TestCatalogEntries checks every entry of senders.json: a valid type, base domains that are
// registrable domains (what enrichment derives from a PTR name, so an entry written as a host
// name could never match), no domain or AS number claimed twice, and each domain and AS
// number naming its entry.
func TestCatalogEntries(t *testing.T) {
	t.Parallel()
	entries, err := Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 60 {
		t.Fatalf("%d named senders, the issue asks for at least 60", len(entries))
	}
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		t.Run(e.Name, func(t *testing.T) {
			if e.Name == "" || names[e.Name] {
				t.Fatalf("empty or duplicate name %q", e.Name)
			}
			names[e.Name] = true
			if !slices.Contains(Types, e.Type) || e.Type == TypeUnknown || e.Type == TypeISP {
				t.Errorf("type %q is not a named sender's type", e.Type)
			}
			if len(e.Domains)+len(e.ASNs) == 0 {
				t.Errorf("no domain and no AS number: it can never match")
			}
			for _, d := range e.Domains {
				if base, err := publicsuffix.EffectiveTLDPlusOne(d); err != nil || base != d {
					t.Errorf("domain %q is not a registrable domain (its base is %q, %v)", d, base, err)
				}
				s, ok := c.Match(d, 0, false)
				if !ok || s.Name != e.Name || s.Type != e.Type {
					t.Errorf("domain %s names %+v", d, s)
				}
			}
			for _, a := range e.ASNs {
				s, ok := c.Match("", a, false)
				if !ok || s.Name != e.Name {
					t.Errorf("AS%d names %+v", a, s)
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	over := c.With([]Mapping{
		{Kind: "domain", Pattern: "example-crm.com", Name: "Our CRM", Type: TypeCRM},
		{Kind: "asn", Pattern: "15169", Name: "Google (override)", Type: TypeMailbox},
		{Kind: "domain", Pattern: "amazonses.com", Name: "SES (ours)", Type: TypeESP},
	})
	tests := []struct {
		name        string
		c           *Catalog
		base        string
		asn         uint32
		residential bool
		want        string
		wantType    string
		known       bool
	}{
		{"google by ptr", c, "google.com", 0, false, "Google Workspace", TypeMailbox, true},
		{"google by asn", c, "", 15169, false, "Google Workspace", TypeMailbox, true},
		{"microsoft by ptr", c, "outlook.com", 8075, false, "Microsoft 365", TypeMailbox, true},
		{"ptr wins over asn", c, "amazonses.com", 16509, false, "Amazon SES", TypeESP, true},
		{"case-insensitive", c, "SendGrid.NET", 0, false, "SendGrid", TypeESP, true},
		{"residential before asn", c, "example-isp.net", 16509, true, ISPName, TypeISP, true},
		{"known ptr before residential", c, "google.com", 0, true, "Google Workspace", TypeMailbox, true},
		{"unknown", c, "example.org", 64500, false, "", TypeUnknown, false},
		{"nothing known", c, "", 0, false, "", TypeUnknown, false},
		{"override adds a domain", over, "example-crm.com", 0, false, "Our CRM", TypeCRM, true},
		{"override replaces an asn", over, "", 15169, false, "Google (override)", TypeMailbox, true},
		{"override replaces a domain", over, "amazonses.com", 0, false, "SES (ours)", TypeESP, true},
		{"override leaves the rest", over, "sendgrid.net", 0, false, "SendGrid", TypeESP, true},
		{"the base catalog is not changed", c, "example-crm.com", 0, false, "", TypeUnknown, false},
	}
	for _, tc := range tests {
		s, ok := tc.c.Match(tc.base, tc.asn, tc.residential)
		if ok != tc.known || s.Name != tc.want || s.Type != tc.wantType {
			t.Errorf("%s: got %+v %v, want %q %q %v", tc.name, s, ok, tc.want, tc.wantType, tc.known)
		}
	}
}

func TestResidential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ptr, ip string
		want    bool
	}{
		{"mail-sor-f41.google.com", "209.85.220.41", false},
		{"a8-31.smtp-out.amazonses.com", "54.240.8.31", false},
		{"mail-db8eur05on2100.outbound.protection.outlook.com", "40.107.20.100", false},
		{"c-73-15-2-9.hsd1.ca.comcast.net", "73.15.2.9", true},
		{"9.113.0.203.static.example.net", "203.0.113.9", true},
		{"203-0-113-9.example.net", "203.0.113.9", true},
		{"host-203.0.113.9.example.net", "203.0.113.9", true},
		{"pool-71-105-3-4.nycmny.fios.verizon.net", "71.105.3.4", true},
		{"dsl-187-3.example.de", "198.51.100.3", true},
		{"p5b0c1a2.dip0.t-ipconnect.de", "91.12.26.162", false}, // opaque: left to the AS number
		{"ppp-1-2.example.net", "198.51.100.7", true},
		{"dynamic.example.com", "198.51.100.8", true},
		{"mx.dynamicsoftware.com", "198.51.100.9", false},
		{"", "198.51.100.9", false},
		{"cpe-2001-db8.example.net", "2001:db8::1", true},
		{"mail.example.net", "2001:db8::1", false},
	}
	for _, tc := range tests {
		if got := Residential(tc.ptr, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Residential(%q, %s) = %v, want %v", tc.ptr, tc.ip, got, tc.want)
		}
	}
}

func TestBuiltinRejectsDuplicates(t *testing.T) {
	t.Parallel()
	entries, err := Entries()
	if err != nil {
		t.Fatal(err)
	}
	seenD, seenA := map[string]string{}, map[uint32]string{}
	for _, e := range entries {
		for _, d := range e.Domains {
			if o, dup := seenD[d]; dup {
				t.Errorf("domain %s in %q and %q", d, o, e.Name)
			}
			seenD[d] = e.Name
		}
		for _, a := range e.ASNs {
			if o, dup := seenA[a]; dup {
				t.Errorf("AS%s in %q and %q", strconv.Itoa(int(a)), o, e.Name)
			}
			seenA[a] = e.Name
		}
	}
}
