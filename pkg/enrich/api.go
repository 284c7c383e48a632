package enrich

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/tasks"
)

// API serves /analytics/geolocation/*.
type API struct {
	svc     *Service
	an      *analytics.API
	senders *senders.API
	now     func() time.Time
}

// WithSenders answers the country map from the sender rollup (pkg/senders); without it the
// map answers 503.
func (a *API) WithSenders(s *senders.API) *API {
	a.senders = s
	return a
}

// NewAPI builds the endpoints on the service and the analytics API (for the map's sums).
func NewAPI(svc *Service, an *analytics.API) *API {
	return &API{svc: svc, an: an, now: time.Now}
}

// Routes lists the endpoints; a nil *API still lists them (for the route table's tests).
func (a *API) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/analytics/geolocation/lookup/:ip", Role: auth.Viewer, Handler: a.lookup},
		{Method: http.MethodPost, Path: "/analytics/geolocation/lookup-bulk", Role: auth.Viewer, Handler: a.lookupBulk},
		{Method: http.MethodGet, Path: "/analytics/geolocation/map", Role: auth.Viewer, Handler: a.countryMap},
		{Method: http.MethodGet, Path: "/analytics/geolocation/cache-stats", Role: auth.Viewer, Handler: a.cacheStats},
		{Method: http.MethodPost, Path: "/tasks/trigger/enrichment", Role: auth.Admin, Handler: a.trigger},
	}
}

// MaxBulk is the most addresses one lookup-bulk request may carry (DESIGN.md).
const MaxBulk = 1000

// lookupTimeout bounds the live DNS of one request: what is not answered by then is
// answered without PTR fields and looked up by a task.
const lookupTimeout = 5 * time.Second

// Lookup is one answer of the lookup endpoints (DESIGN.md: unknown values null).
type Lookup struct {
	IP           string   `json:"ip"`
	Country      *string  `json:"country"`
	CountryName  *string  `json:"country_name"`
	Region       *string  `json:"region"`
	City         *string  `json:"city"`
	Latitude     *float64 `json:"latitude"`
	Longitude    *float64 `json:"longitude"`
	TimeZone     *string  `json:"time_zone"`
	ASN          *int64   `json:"asn"`
	ASOrg        *string  `json:"as_org"`
	PTR          *string  `json:"ptr"`
	PTRConfirmed *bool    `json:"ptr_confirmed"`
	BaseDomain   *string  `json:"base_domain"`
	Sender       *string  `json:"sender"`
	SenderType   string   `json:"sender_type"`
	DNSStatus    *string  `json:"dns_status"`
	Error        string   `json:"error,omitempty"`
}

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func lookupOf(in *Info, cat *senders.Catalog) Lookup {
	l := Lookup{IP: in.IP.String(), Country: str(in.Country), CountryName: str(in.CountryName), Region: str(in.Region), City: str(in.City),
		Latitude: in.Latitude, Longitude: in.Longitude, TimeZone: str(in.TimeZone), ASOrg: str(in.ASOrg), PTR: str(in.PTR),
		BaseDomain: str(in.BaseDomain), DNSStatus: str(in.DNSStatus), SenderType: senders.TypeUnknown}
	if in.ASN != 0 {
		asn := in.ASN
		l.ASN = &asn
	}
	if in.DNSStatus != "" {
		c := in.PTRConfirmed
		l.PTRConfirmed = &c
	}
	if cat != nil {
		if s, ok := cat.Match(in.BaseDomain, uint32(in.ASN), in.Residential); ok {
			l.Sender, l.SenderType = &s.Name, s.Type
		}
	}
	return l
}

// Lookup answers for ips from the cache, looking up live what is missing or expired (DNS
// within lookupTimeout) and keeping the results.
func (s *Service) Lookup(ctx context.Context, ips []netip.Addr) (map[netip.Addr]*Info, error) {
	dctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if _, err := s.Enrich(dctx, ips); err != nil && ctx.Err() != nil {
		return nil, err
	}
	out, err := s.load(ctx, ips)
	if err != nil {
		return nil, err
	}
	// Whatever the deadline cut short is answered with what GeoIP says alone.
	now := s.now().Unix()
	for _, ip := range ips {
		ip = ip.Unmap()
		if _, ok := out[ip]; !ok && ip.IsValid() {
			in := &Info{IP: ip}
			if s.geo != nil {
				s.applyGeo(in, now)
			}
			out[ip] = in
		}
	}
	return out, nil
}

func parseIP(v string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("not an IPv4 or IPv6 address")
	}
	return ip.Unmap(), nil
}

func (a *API) catalog(ctx context.Context) (*senders.Catalog, error) {
	if a.svc.senders == nil {
		return nil, nil
	}
	return a.svc.senders.Catalog(ctx)
}

func (a *API) lookup(c echo.Context) error {
	ip, err := parseIP(c.Param("ip"))
	if err != nil {
		return apiparams.BadParam("ip", "want an IPv4 or IPv6 address")
	}
	ctx := c.Request().Context()
	infos, err := a.svc.Lookup(ctx, []netip.Addr{ip})
	if err != nil {
		return err
	}
	cat, err := a.catalog(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, lookupOf(infos[ip], cat))
}

// maxBulkBody bounds the request body: 1,000 addresses of at most 45 characters and quotes.
const maxBulkBody = 64 << 10

func (a *API) lookupBulk(c echo.Context) error {
	var body struct {
		IPs []string `json:"ips"`
	}
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, maxBulkBody+1))
	if err := dec.Decode(&body); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body: want {\"ips\": [\"192.0.2.1\", ...]} ("+err.Error()+")")
	}
	if body.IPs == nil {
		return echo.NewHTTPError(http.StatusBadRequest, "ips: missing")
	}
	if len(body.IPs) > MaxBulk {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("ips: %d addresses, at most %d per request", len(body.IPs), MaxBulk))
	}
	ips := make([]netip.Addr, len(body.IPs))
	errs := make([]string, len(body.IPs))
	valid := make([]netip.Addr, 0, len(body.IPs))
	for i, v := range body.IPs {
		ip, err := parseIP(v)
		if err != nil {
			errs[i] = err.Error()
			continue
		}
		ips[i] = ip
		valid = append(valid, ip)
	}
	ctx := c.Request().Context()
	infos, err := a.svc.Lookup(ctx, valid)
	if err != nil {
		return err
	}
	cat, err := a.catalog(ctx)
	if err != nil {
		return err
	}
	items := make([]Lookup, len(body.IPs))
	for i, v := range body.IPs {
		if errs[i] != "" {
			items[i] = Lookup{IP: v, Error: errs[i]}
			continue
		}
		items[i] = lookupOf(infos[ips[i]], cat)
	}
	// A bad entry is {"ip", "error"} only (DESIGN.md).
	out := make([]any, len(items))
	for i, it := range items {
		if it.Error != "" {
			out[i] = map[string]string{"ip": it.IP, "error": it.Error}
		} else {
			out[i] = it
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": out})
}

// Country is one country of the map.
type Country struct {
	Country       string   `json:"country"`
	CountryName   string   `json:"country_name"`
	Messages      int64    `json:"messages"`
	IPs           int64    `json:"ips"`
	DMARCPass     int64    `json:"dmarc_pass_messages"`
	DMARCPassRate *float64 `json:"dmarc_pass_rate"`
}

// Map is the country heatmap.
type Map struct {
	Countries   []Country `json:"countries"`
	TotalIPs    int64     `json:"total_ips"`
	MappedIPs   int64     `json:"mapped_ips"`
	UnmappedIPs int64     `json:"unmapped_ips"`
	Messages    int64     `json:"messages"`
}

func rate(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

// countryMap sums messages, sources and DMARC passes per country under the common filters
// (days 7/30/90/365 like the seed product, or any other common filter).
func (a *API) countryMap(c echo.Context) error {
	f, err := apiparams.Filter(c, a.now())
	if err != nil {
		return err
	}
	if a.senders == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "sender intelligence is not configured in this process")
	}
	rows, err := a.senders.Rows(c.Request().Context(), f, senders.DimCountry)
	if err != nil {
		return err
	}
	m := Map{Countries: []Country{}}
	byCode := map[string]*Country{}
	for _, r := range rows {
		m.TotalIPs += r.IPs
		m.Messages += r.Messages
		code := r.Group.Key
		if code == "" {
			m.UnmappedIPs += r.IPs
			continue
		}
		m.MappedIPs += r.IPs
		cc := byCode[code]
		if cc == nil {
			cc = &Country{Country: code, CountryName: r.Name}
			byCode[code] = cc
		}
		cc.Messages, cc.IPs, cc.DMARCPass = cc.Messages+r.Messages, cc.IPs+r.IPs, cc.DMARCPass+r.DMARCPass
	}
	for _, cc := range byCode {
		cc.DMARCPassRate = rate(cc.DMARCPass, cc.Messages)
		m.Countries = append(m.Countries, *cc)
	}
	sort.Slice(m.Countries, func(i, j int) bool {
		if m.Countries[i].Messages != m.Countries[j].Messages {
			return m.Countries[i].Messages > m.Countries[j].Messages
		}
		return m.Countries[i].Country < m.Countries[j].Country
	})
	return c.JSON(http.StatusOK, m)
}

// CacheStats describes the enrichment cache and the GeoIP databases.
type CacheStats struct {
	Entries      int64            `json:"entries"`
	WithPTR      int64            `json:"with_ptr"`
	PTRConfirmed int64            `json:"ptr_confirmed"`
	WithGeo      int64            `json:"with_geo"`
	DNSExpired   int64            `json:"dns_expired"`
	GeoExpired   int64            `json:"geo_expired"`
	DNSStatus    map[string]int64 `json:"dns_status"`
	Sources      int64            `json:"sources"`
	Unenriched   int64            `json:"unenriched_sources"`
	Ungrouped    int64            `json:"ungrouped_sources"`
	GeoIP        GeoIPStatus      `json:"geoip"`
	TTL          map[string]int64 `json:"ttl_seconds"`
}

// GeoIPStatus says which databases are loaded, and how to add them when they are not.
type GeoIPStatus struct {
	City geo.FileStatus `json:"city"`
	ASN  geo.FileStatus `json:"asn"`
	Hint string         `json:"hint,omitempty"`
}

// GeoHint tells an operator how to add missing databases (for /ready and cache-stats).
const GeoHint = "GeoIP database missing: download GeoLite2-City and GeoLite2-ASN (free MaxMind account) or DB-IP City Lite and ASN Lite (.mmdb), mount them and set VIGIL_GEOIP_CITY_DB / VIGIL_GEOIP_ASN_DB; a file replaced on disk is picked up without a restart (docs/enrichment.md)"

// GeoStatus describes the databases; Hint is set when one is not loaded.
func (s *Service) GeoStatus() GeoIPStatus {
	var st GeoIPStatus
	if s.geo == nil {
		st.City.Error, st.ASN.Error = "not configured", "not configured"
	} else {
		st.City, st.ASN = s.geo.Status()
	}
	if !st.City.Loaded || !st.ASN.Loaded {
		st.Hint = GeoHint
	}
	return st
}

func (a *API) cacheStats(c echo.Context) error {
	ctx := c.Request().Context()
	now := a.svc.now().Unix()
	st := CacheStats{DNSStatus: map[string]int64{}, GeoIP: a.svc.GeoStatus(), TTL: map[string]int64{
		"positive": int64(a.svc.cfg.PositiveTTL / time.Second), "negative": int64(a.svc.cfg.NegativeTTL / time.Second),
		"geo": int64(a.svc.cfg.GeoTTL / time.Second)}}
	var row struct {
		Entries, WithPTR, Confirmed, WithGeo, DNSExpired, GeoExpired int64
	}
	err := a.svc.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS entries,
		COALESCE(SUM(CASE WHEN ptr IS NOT NULL THEN 1 ELSE 0 END), 0) AS with_ptr,
		COALESCE(SUM(CASE WHEN ptr_confirmed THEN 1 ELSE 0 END), 0) AS confirmed,
		COALESCE(SUM(CASE WHEN country IS NOT NULL OR asn IS NOT NULL THEN 1 ELSE 0 END), 0) AS with_geo,
		COALESCE(SUM(CASE WHEN dns_expires <= ? THEN 1 ELSE 0 END), 0) AS dns_expired,
		COALESCE(SUM(CASE WHEN geo_expires <= ? THEN 1 ELSE 0 END), 0) AS geo_expired FROM enrich_ips`, now, now).Scan(&row).Error
	if err != nil {
		return fmt.Errorf("enrich: cache stats: %w", err)
	}
	st.Entries, st.WithPTR, st.PTRConfirmed, st.WithGeo, st.DNSExpired, st.GeoExpired = row.Entries, row.WithPTR, row.Confirmed, row.WithGeo, row.DNSExpired, row.GeoExpired
	var byStatus []struct {
		DNSStatus string
		N         int64
	}
	if err := a.svc.db.WithContext(ctx).Raw("SELECT dns_status, COUNT(*) AS n FROM enrich_ips GROUP BY dns_status").Scan(&byStatus).Error; err != nil {
		return fmt.Errorf("enrich: cache stats: %w", err)
	}
	for _, b := range byStatus {
		st.DNSStatus[b.DNSStatus] = b.N
	}
	var src struct{ Sources, Unenriched int64 }
	if err := a.svc.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS sources, COALESCE(SUM(CASE WHEN e.ip IS NULL THEN 1 ELSE 0 END), 0) AS unenriched
		FROM rollup_ips i LEFT JOIN enrich_ips e ON e.ip = i.ip`).Scan(&src).Error; err != nil {
		return fmt.Errorf("enrich: cache stats: %w", err)
	}
	st.Sources, st.Unenriched = src.Sources, src.Unenriched
	// Enriched sources whose sender group is not derived yet (pkg/senders: they show as
	// pending in /api/senders until the enrichment batch or the next rollup run derives it).
	if err := a.svc.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM rollup_ips i JOIN enrich_ips e ON e.ip = i.ip
		LEFT JOIN sender_sources ss ON ss.ip_id = i.id WHERE ss.ip_id IS NULL OR ss.enriched_at <> e.updated_at`).Scan(&st.Ungrouped).Error; err != nil {
		return fmt.Errorf("enrich: cache stats: %w", err)
	}
	return c.JSON(http.StatusOK, st)
}

// trigger enqueues the back-fill: every known source whose cache entry is missing or expired
// (keyed to the minute, so a double click enqueues one).
func (a *API) trigger(c echo.Context) error {
	if a.svc.enq == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no task queue in this process")
	}
	period := a.now().UTC().Truncate(time.Minute)
	t, err := tasks.NewEnrichRefreshTask(period)
	if err != nil {
		return err
	}
	if _, err := a.svc.enq.EnqueueContext(c.Request().Context(), t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue enrichment: %w", err)
	}
	return c.JSON(http.StatusAccepted, map[string]string{"task_id": tasks.EnrichRefreshTaskID(period)})
}

// OpenAPI is this package's fragment of the API description (merged by pkg/httpapi).
//
//go:embed openapi.json
var OpenAPI []byte

// Describe is analytics.Deps.Describe: the cached enrichment of ips (no live lookups), with
// the sender named from the current catalog.
func (s *Service) Describe(ctx context.Context, ips []netip.Addr) (map[netip.Addr]analytics.SourceInfo, error) {
	infos, err := s.load(ctx, ips)
	if err != nil {
		return nil, err
	}
	var cat *senders.Catalog
	if s.senders != nil {
		if cat, err = s.senders.Catalog(ctx); err != nil {
			return nil, err
		}
	}
	out := make(map[netip.Addr]analytics.SourceInfo, len(infos))
	for ip, in := range infos {
		l := lookupOf(in, cat)
		si := analytics.SourceInfo{PTR: l.PTR, BaseDomain: l.BaseDomain, Sender: l.Sender, ASN: l.ASN, ASOrg: l.ASOrg, Country: l.Country}
		t := l.SenderType
		si.SenderType = &t
		out[ip] = si
	}
	return out, nil
}
