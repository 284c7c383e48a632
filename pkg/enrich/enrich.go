// Package enrich turns source addresses into what a postmaster needs to know about them:
// reverse DNS with forward confirmation (FCrDNS), the registrable domain of the PTR name
// (golang.org/x/net/publicsuffix), and network and place from the GeoIP databases (pkg/geo).
// Results are cached in the enrich_ips table (DNS: positive 7 days, negative 1 day; GeoIP:
// 90 days; all configurable) and computed on workers by the enrich:* tasks, off the ingestion
// path: a report is stored and queryable before its addresses are enriched, and a failure to
// enrich never touches ingestion. The package also serves /analytics/geolocation/*.
package enrich

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/store"
)

// Config holds the limits and lifetimes of enrichment.
type Config struct {
	Concurrency int           // DNS lookups in flight per batch (default 64)
	BatchSize   int           // addresses per enrich:ips task (default 500)
	PositiveTTL time.Duration // a PTR found (default 7 days)
	NegativeTTL time.Duration // no PTR, SERVFAIL, timeout (default 1 day)
	GeoTTL      time.Duration // GeoIP results (default 90 days)
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PositiveTTL <= 0 {
		c.PositiveTTL = 7 * 24 * time.Hour
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 24 * time.Hour
	}
	if c.GeoTTL <= 0 {
		c.GeoTTL = 90 * 24 * time.Hour
	}
	return c
}

// Deps are what the service needs. Resolver may be nil (no DNS: PTR fields stay empty and
// are retried after the negative TTL); Geo may be nil (no databases).
type Deps struct {
	Store    *store.Store
	Resolver *Resolver
	Geo      *geo.DB
	Senders  *senders.Service
	Enqueuer Enqueuer // nil: no tasks (the lookup endpoints still work)
	// OnEnriched hears that a batch wrote cache entries (pkg/senders derives their groups).
	OnEnriched func(ctx context.Context, ips []netip.Addr)
	Config     Config
	Log        *slog.Logger
	Now        func() time.Time
}

// Service enriches addresses and serves the geolocation endpoints.
type Service struct {
	st      *store.Store
	db      *gorm.DB
	dialect store.Dialect
	res     *Resolver
	geo     *geo.DB
	senders *senders.Service
	enq     Enqueuer
	onDone  func(ctx context.Context, ips []netip.Addr)
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{st: d.Store, db: d.Store.DB(), dialect: d.Store.Dialect(), res: d.Resolver, geo: d.Geo, senders: d.Senders, enq: d.Enqueuer, onDone: d.OnEnriched,
		cfg: d.Config.withDefaults(), log: d.Log, now: d.Now}
}

// Info is the cached knowledge about one address.
type Info struct {
	IP           netip.Addr
	PTR          string
	PTRConfirmed bool
	BaseDomain   string
	Residential  bool
	DNSStatus    string
	DNSExpires   int64 // Unix seconds
	ASN          int64
	ASOrg        string
	Country      string
	CountryName  string
	Region       string
	City         string
	Latitude     *float64
	Longitude    *float64
	TimeZone     string
	GeoExpires   int64 // 0: looked up without databases
	UpdatedAt    int64
}

// key is the 16-byte form of records.ip and rollup_ips.ip.
func key(ip netip.Addr) []byte {
	b := ip.Unmap().As16()
	return b[:]
}

func addrOf(b []byte) netip.Addr {
	if len(b) != 16 {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte(b)).Unmap()
}

// BaseDomain is the registrable domain of a host name (mail-sor-f41.google.com → google.com),
// "" when it has none (a bare public suffix, an invalid name).
func BaseDomain(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return ""
	}
	return d
}

// Stats counts what one Enrich call did.
type Stats struct {
	Addresses  int `json:"addresses"`   // distinct addresses asked about
	Fresh      int `json:"fresh"`       // already cached and not expired
	DNSLookups int `json:"dns_lookups"` // addresses whose PTR was looked up
	GeoLookups int `json:"geo_lookups"`
	Written    int `json:"written"`
}

// Enrich brings the cache entries of ips up to date: addresses never seen or whose DNS or
// GeoIP part expired are looked up (DNS with bounded concurrency) and written back. Looking
// the same addresses up twice at once is harmless (both write the same kind of row; the last
// one stays); the enrich:ips TaskID keeps it from happening for a batch.
func (s *Service) Enrich(ctx context.Context, ips []netip.Addr) (Stats, error) {
	var st Stats
	uniq := make([]netip.Addr, 0, len(ips))
	seen := make(map[netip.Addr]bool, len(ips))
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.IsValid() && !seen[ip] {
			seen[ip] = true
			uniq = append(uniq, ip)
		}
	}
	st.Addresses = len(uniq)
	cached, err := s.load(ctx, uniq)
	if err != nil {
		return st, err
	}
	now := s.now().Unix()
	cityOK, asnOK := s.geoLoaded()
	var todo []*Info
	var needDNS []*Info
	for _, ip := range uniq {
		in, ok := cached[ip]
		if !ok {
			in = &Info{IP: ip}
		}
		dns := !ok || in.DNSExpires <= now
		geoStale := (cityOK || asnOK) && in.GeoExpires <= now
		if !dns && !geoStale {
			st.Fresh++
			continue
		}
		if dns {
			needDNS = append(needDNS, in)
		}
		if geoStale {
			s.applyGeo(in, now)
			st.GeoLookups++
		}
		todo = append(todo, in)
	}
	st.DNSLookups = len(needDNS)
	s.resolveAll(ctx, needDNS, now)
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := s.save(ctx, todo, now); err != nil {
		return st, err
	}
	st.Written = len(todo)
	return st, nil
}

func (s *Service) geoLoaded() (city, asn bool) {
	if s.geo == nil {
		return false, false
	}
	return s.geo.Loaded()
}

// applyGeo fills the GeoIP fields; an address the databases do not know keeps empty fields
// and is not asked again before GeoTTL.
func (s *Service) applyGeo(in *Info, now int64) {
	r := s.geo.Lookup(in.IP)
	in.Country, in.CountryName, in.Region, in.City = r.Country, r.CountryName, r.Region, r.City
	in.Latitude, in.Longitude, in.TimeZone = r.Latitude, r.Longitude, r.TimeZone
	in.ASN, in.ASOrg = int64(r.ASN), r.ASOrg
	if r.HasCity && r.HasASN {
		in.GeoExpires = now + int64(s.cfg.GeoTTL/time.Second)
	} else {
		// One database is missing: look again when the next enrichment comes, so it is
		// filled in as soon as the file is mounted (the DNS part keeps its own lifetime).
		in.GeoExpires = 0
	}
}

// resolveAll looks up the PTR of each address with at most Concurrency lookups in flight.
func (s *Service) resolveAll(ctx context.Context, ins []*Info, now int64) {
	if len(ins) == 0 {
		return
	}
	n := min(s.cfg.Concurrency, len(ins))
	work := make(chan *Info)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sess *Session
			if s.res != nil {
				sess = s.res.Session()
				defer sess.Close()
			}
			for in := range work {
				s.resolve(ctx, sess, in, now)
			}
		}()
	}
	for _, in := range ins {
		select {
		case work <- in:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
}

func (s *Service) resolve(ctx context.Context, sess *Session, in *Info, now int64) {
	ttl := s.cfg.NegativeTTL
	if s.res == nil {
		in.DNSStatus = StatusError
		in.DNSExpires = now + int64(ttl/time.Second)
		return
	}
	r := sess.Lookup(ctx, in.IP)
	in.PTR, in.PTRConfirmed, in.DNSStatus = r.Name, r.Confirmed, r.Status
	in.BaseDomain, in.Residential = "", false
	if r.Name != "" {
		in.BaseDomain = BaseDomain(r.Name)
		in.Residential = senders.Residential(r.Name, in.IP)
		ttl = s.cfg.PositiveTTL
	}
	in.DNSExpires = now + int64(ttl/time.Second)
}

const cols = "ip, ptr, ptr_confirmed, base_domain, residential, dns_status, dns_expires, asn, as_org, country, country_name, region, city, latitude, longitude, time_zone, geo_expires, updated_at"

// loadChunk bounds the addresses of one IN list.
const loadChunk = 500

// load reads the cache rows of ips.
func (s *Service) load(ctx context.Context, ips []netip.Addr) (map[netip.Addr]*Info, error) {
	out := make(map[netip.Addr]*Info, len(ips))
	for lo := 0; lo < len(ips); lo += loadChunk {
		part := ips[lo:min(lo+loadChunk, len(ips))]
		args := make([]any, len(part))
		for i, ip := range part {
			args[i] = key(ip)
		}
		q := "SELECT " + cols + " FROM enrich_ips WHERE ip IN (" + strings.TrimSuffix(strings.Repeat("?,", len(part)), ",") + ")"
		if err := s.query(ctx, q, args, func(in *Info) { out[in.IP] = in }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// query runs a SELECT of cols and scans each row.
func (s *Service) query(ctx context.Context, q string, args []any, fn func(*Info)) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	rows, err := sqlDB.QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return fmt.Errorf("enrich: read cache: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		in, err := scanInfo(rows)
		if err != nil {
			return fmt.Errorf("enrich: read cache: %w", err)
		}
		fn(in)
	}
	return rows.Err()
}

func scanInfo(rows *sql.Rows) (*Info, error) {
	var (
		ip                                                  []byte
		ptr, base, status, org, cc, cname, region, city, tz sql.NullString
		asn                                                 sql.NullInt64
		lat, lon                                            sql.NullFloat64
		in                                                  Info
	)
	if err := rows.Scan(&ip, &ptr, &in.PTRConfirmed, &base, &in.Residential, &status, &in.DNSExpires, &asn, &org, &cc, &cname,
		&region, &city, &lat, &lon, &tz, &in.GeoExpires, &in.UpdatedAt); err != nil {
		return nil, err
	}
	in.IP = addrOf(ip)
	in.PTR, in.BaseDomain, in.DNSStatus, in.ASOrg = ptr.String, base.String, status.String, org.String
	in.Country, in.CountryName, in.Region, in.City, in.TimeZone = cc.String, cname.String, region.String, city.String, tz.String
	in.ASN = asn.Int64
	if lat.Valid {
		in.Latitude = &lat.Float64
	}
	if lon.Valid {
		in.Longitude = &lon.Float64
	}
	return &in, nil
}

// Rows per INSERT. PostgreSQL: 18 parameters each, far below its 65,535; a batch of the
// default size is one statement. SQLite: 32 rows, chosen when its driver (glebarez/go-sqlite,
// since replaced) bound each positional parameter by scanning the argument list (a 200-row
// statement, 3,600 parameters, cost more CPU than the lookups that filled it); SQLite still
// parses each of these statements afresh, which a short one keeps cheap.
const (
	pgSaveChunk     = 1000
	sqliteSaveChunk = 32
)

// save upserts the rows in one transaction, as derived data (store.WriteDerived: serialised
// with the process's other writers on SQLite, committed without waiting for the WAL flush on
// PostgreSQL; a lost entry is looked up again).
func (s *Service) save(ctx context.Context, ins []*Info, now int64) error {
	if len(ins) == 0 {
		return nil
	}
	var set strings.Builder
	for i, c := range strings.Split(cols, ", ")[1:] {
		if i > 0 {
			set.WriteString(", ")
		}
		set.WriteString(c + " = excluded." + c)
	}
	const row = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	head, tail := "INSERT INTO enrich_ips ("+cols+") VALUES ", " ON CONFLICT (ip) DO UPDATE SET "+set.String()
	args := func(in *Info) []any {
		var asn any
		if in.ASN != 0 {
			asn = in.ASN
		}
		return []any{key(in.IP), null(in.PTR), in.PTRConfirmed, null(in.BaseDomain), in.Residential, in.DNSStatus, in.DNSExpires,
			asn, null(in.ASOrg), null(in.Country), null(in.CountryName), null(in.Region), null(in.City), in.Latitude, in.Longitude,
			null(in.TimeZone), in.GeoExpires, now}
	}
	err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		// The connection itself: gorm would expand a []byte argument (an address) into a list.
		pool := tx.Statement.ConnPool
		chunk := pgSaveChunk
		if s.dialect != store.Postgres {
			chunk = sqliteSaveChunk
		}
		for lo := 0; lo < len(ins); lo += chunk {
			part := ins[lo:min(lo+chunk, len(ins))]
			vals := make([]any, 0, len(part)*18)
			for _, in := range part {
				vals = append(vals, args(in)...)
			}
			q := head + strings.TrimSuffix(strings.Repeat(row+",", len(part)), ",") + tail
			if _, err := pool.ExecContext(ctx, s.bind(q), vals...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enrich: write cache: %w", err)
	}
	return nil
}

// null stores an empty string as NULL: unknown, for the API and for grouping.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// bind turns ? placeholders into PostgreSQL's $n. The queries here go to database/sql
// directly: gorm would expand a []byte argument (an address) into a list.
func (s *Service) bind(q string) string {
	if s.dialect != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
