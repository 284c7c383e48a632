// Package geo answers where an address is and which network announces it, from MaxMind-format
// databases on disk (GeoLite2 or DB-IP Lite City and ASN files, VIGIL_GEOIP_CITY_DB and
// VIGIL_GEOIP_ASN_DB). Vigil never downloads them: an operator mounts the files, and a file
// replaced on disk is picked up without a restart. A database that is missing or unreadable
// leaves its fields empty; Status says why, for /ready and the logs.
package geo

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Result is what the databases know about one address; empty strings and nil pointers are
// unknown values.
type Result struct {
	Country     string // ISO 3166-1 alpha-2
	CountryName string // English
	Region      string // first subdivision, English
	City        string
	Latitude    *float64
	Longitude   *float64
	TimeZone    string
	ASN         uint32 // 0: unknown
	ASOrg       string
	// HasCity and HasASN say which database answered (was loaded), so a caller can tell
	// "not in the database" from "no database".
	HasCity, HasASN bool
}

// Config names the database files; an empty path means no such database. CheckEvery is how
// often a lookup may stat the files for a replacement (default 30s; negative: every lookup,
// for tests).
type Config struct {
	CityPath   string
	ASNPath    string
	CheckEvery time.Duration
}

// DB is safe for concurrent use.
type DB struct {
	city, asn *file
}

// Open loads the configured databases. It never fails: a missing or bad file is logged and
// reported by Status, and loaded as soon as a usable file appears at its path.
func Open(cfg Config, log *slog.Logger) *DB {
	every := cfg.CheckEvery
	if every == 0 {
		every = 30 * time.Second
	}
	d := &DB{city: newFile("city", cfg.CityPath, every, log), asn: newFile("asn", cfg.ASNPath, every, log)}
	d.city.check(time.Now())
	d.asn.check(time.Now())
	return d
}

// Lookup answers for ip. Only the fields Vigil keeps are decoded (not every language's
// names), so a lookup in both databases costs about a microsecond; it never does I/O but an
// occasional stat.
func (d *DB) Lookup(ip netip.Addr) Result {
	var res Result
	ip = ip.Unmap()
	now := time.Now()
	if r := d.city.reader(now); r != nil {
		res.HasCity = true
		var c cityRecord
		if err := r.mm.Lookup(ip).Decode(&c); err == nil {
			res.Country = c.Country.ISOCode
			res.CountryName = c.Country.Names.English
			if len(c.Subdivisions) > 0 {
				res.Region = c.Subdivisions[0].Names.English
			}
			res.City = c.City.Names.English
			res.Latitude, res.Longitude = c.Location.Latitude, c.Location.Longitude
			res.TimeZone = c.Location.TimeZone
		}
	}
	if r := d.asn.reader(now); r != nil {
		res.HasASN = true
		var a asnRecord
		if err := r.mm.Lookup(ip).Decode(&a); err == nil {
			res.ASN = a.Number
			res.ASOrg = a.Org
		}
	}
	return res
}

// cityRecord and asnRecord are the parts of GeoIP2/GeoLite2/DB-IP records Vigil keeps, with
// the field names of geoip2.City and geoip2.ASN.
type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
		Names   names  `maxminddb:"names"`
	} `maxminddb:"country"`
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Subdivisions []struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
		TimeZone  string   `maxminddb:"time_zone"`
	} `maxminddb:"location"`
}

type names struct {
	English string `maxminddb:"en"`
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// Loaded reports whether the City and ASN databases are loaded now.
func (d *DB) Loaded() (city, asn bool) {
	now := time.Now()
	return d.city.reader(now) != nil, d.asn.reader(now) != nil
}

// FileStatus describes one database for /ready and the docs' troubleshooting.
type FileStatus struct {
	Path   string    `json:"path"`
	Loaded bool      `json:"loaded"`
	Type   string    `json:"type,omitempty"`  // database_type from its metadata
	Built  time.Time `json:"built,omitzero"`  // build time from its metadata
	Error  string    `json:"error,omitempty"` // why it is not loaded
}

// Status describes both databases.
func (d *DB) Status() (city, asn FileStatus) {
	return d.city.status(), d.asn.status()
}

// file is one database path and the reader of its current contents.
type file struct {
	kind  string
	path  string
	every time.Duration
	log   *slog.Logger

	r         atomic.Pointer[reader]
	nextCheck atomic.Int64 // unix nanoseconds

	mu      sync.Mutex // one reload at a time
	sig     fileSig
	lastErr string
}

// reader is one loaded version of a database: geoip2's reader checked its type and the
// maxminddb reader over the same bytes decodes the narrow records.
type reader struct {
	mm   *maxminddb.Reader
	meta maxminddb.Metadata
}

// fileSig identifies a version of the file on disk.
type fileSig struct {
	size int64
	mod  time.Time
}

func newFile(kind, path string, every time.Duration, log *slog.Logger) *file {
	return &file{kind: kind, path: path, every: every, log: log}
}

// reader returns the loaded reader, looking for a new file on disk at most every f.every.
func (f *file) reader(now time.Time) *reader {
	if f.path == "" {
		return nil
	}
	if n := now.UnixNano(); n >= f.nextCheck.Load() {
		f.check(now)
	}
	return f.r.Load()
}

// check loads the file when its size or modification time changed since the last load. The
// whole file is read into memory rather than mapped: an old reader still answering a lookup
// while a new file is loaded stays valid (the garbage collector frees it), and a file
// replaced by a copy instead of a rename cannot fault a mapping under a running lookup.
func (f *file) check(now time.Time) {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.UnixNano() < f.nextCheck.Load() {
		return // another lookup checked meanwhile
	}
	if f.every < 0 {
		f.nextCheck.Store(0)
	} else {
		f.nextCheck.Store(now.Add(f.every).UnixNano())
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		f.fail(fmt.Errorf("%s database %s: %w", f.kind, f.path, err))
		return
	}
	sig := fileSig{size: fi.Size(), mod: fi.ModTime()}
	if sig == f.sig && f.r.Load() != nil {
		return
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.fail(fmt.Errorf("%s database %s: %w", f.kind, f.path, err))
		return
	}
	g, err := geoip2.OpenBytes(b)
	if err == nil {
		err = f.fits(g)
	}
	var mm *maxminddb.Reader
	if err == nil {
		mm, err = maxminddb.OpenBytes(b)
	}
	if err != nil {
		f.fail(fmt.Errorf("%s database %s: %w", f.kind, f.path, err))
		return
	}
	old := f.r.Swap(&reader{mm: mm, meta: g.Metadata()})
	f.sig, f.lastErr = sig, ""
	f.log.Info("geoip database loaded", "kind", f.kind, "path", f.path, "type", g.Metadata().DatabaseType,
		"built", time.Unix(int64(g.Metadata().BuildEpoch), 0).UTC(), "reloaded", old != nil)
}

// fits refuses a database of the wrong kind (an ASN file configured as the City one).
func (f *file) fits(r *geoip2.Reader) error {
	probe := netip.MustParseAddr("1.1.1.1")
	var err error
	if f.kind == "city" {
		_, err = r.City(probe)
	} else {
		_, err = r.ASN(probe)
	}
	var wrong geoip2.InvalidMethodError
	if errors.As(err, &wrong) {
		return fmt.Errorf("not a %s database (type %q)", f.kind, r.Metadata().DatabaseType)
	}
	return nil
}

// fail keeps the reader already loaded, if any: a half-written replacement must not blank
// the answers until the write completes.
func (f *file) fail(err error) {
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		f.log.Warn("geoip database not loaded; enrichment runs without its fields", "kind", f.kind, "err", err)
	}
}

func (f *file) status() FileStatus {
	s := FileStatus{Path: f.path}
	if f.path == "" {
		s.Error = "not configured"
		return s
	}
	r := f.reader(time.Now())
	f.mu.Lock()
	s.Error = f.lastErr
	f.mu.Unlock()
	if r != nil {
		s.Loaded = true
		s.Type = r.meta.DatabaseType
		s.Built = time.Unix(int64(r.meta.BuildEpoch), 0).UTC()
	}
	return s
}
