// Package geotest writes small MaxMind-format City and ASN databases for tests (generated with
// maxmind/mmdbwriter, so tests never need a real GeoLite2 file).
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// City is one network of a City database.
type City struct {
	Network     string // CIDR, IPv4 or IPv6
	Country     string // ISO code
	CountryName string
	Region      string
	City        string
	Lat, Lon    float64
	TimeZone    string
}

// ASN is one network of an ASN database.
type ASN struct {
	Network string
	Number  uint32
	Org     string
}

// WriteCity writes a GeoLite2-City database with the networks to path (atomically: a reader
// watching path never sees a half-written file).
func WriteCity(tb testing.TB, path string, nets []City) {
	tb.Helper()
	w := newWriter(tb, "GeoLite2-City")
	for _, c := range nets {
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(c.Country), "names": mmdbtype.Map{"en": mmdbtype.String(c.CountryName)}},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(c.Lat), "longitude": mmdbtype.Float64(c.Lon),
				"time_zone": mmdbtype.String(c.TimeZone)},
		}
		if c.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(c.City)}}
		}
		if c.Region != "" {
			rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(c.Region)}}}
		}
		insert(tb, w, c.Network, rec)
	}
	write(tb, w, path)
}

// WriteASN writes a GeoLite2-ASN database with the networks to path (atomically).
func WriteASN(tb testing.TB, path string, nets []ASN) {
	tb.Helper()
	w := newWriter(tb, "GeoLite2-ASN")
	for _, a := range nets {
		insert(tb, w, a.Network, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(a.Number),
			"autonomous_system_organization": mmdbtype.String(a.Org),
		})
	}
	write(tb, w, path)
}

func newWriter(tb testing.TB, typ string) *mmdbwriter.Tree {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: typ, RecordSize: 28, IncludeReservedNetworks: true})
	if err != nil {
		tb.Fatalf("geotest: %v", err)
	}
	return w
}

func insert(tb testing.TB, w *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		tb.Fatalf("geotest: %v", err)
	}
	if err := w.Insert(n, rec); err != nil {
		tb.Fatalf("geotest: insert %s: %v", cidr, err)
	}
}

func write(tb testing.TB, w *mmdbwriter.Tree, path string) {
	f, err := os.CreateTemp(filepath.Dir(path), ".mmdb-*")
	if err != nil {
		tb.Fatalf("geotest: %v", err)
	}
	if _, err := w.WriteTo(f); err != nil {
		tb.Fatalf("geotest: write: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("geotest: %v", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		tb.Fatalf("geotest: %v", err)
	}
}
