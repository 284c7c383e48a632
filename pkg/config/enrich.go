package config

import (
	"net"
	"time"
)

// Enrich configures sender intelligence (pkg/geo, pkg/enrich): where the GeoIP databases are,
// which DNS server answers PTR and forward lookups, and how long results are kept.
type Enrich struct {
	GeoIPCityDB     string        // VIGIL_GEOIP_CITY_DB: a GeoLite2-City / DB-IP City Lite .mmdb ("" = none)
	GeoIPASNDB      string        // VIGIL_GEOIP_ASN_DB: a GeoLite2-ASN / DB-IP ASN Lite .mmdb ("" = none)
	GeoIPCheck      time.Duration // how often the files are checked for a replacement
	DNSResolver     string        // host:port; "" = the first nameserver of /etc/resolv.conf
	DNSTimeout      time.Duration // per query
	DNSConcurrency  int           // lookups in flight per batch
	BatchSize       int           // addresses per enrich:ips task
	PositiveTTL     time.Duration // a PTR found
	NegativeTTL     time.Duration // no PTR, SERVFAIL, timeout
	GeoTTL          time.Duration // GeoIP results
	RefreshInterval time.Duration // the scheduler's refresh of expired entries
	// SenderRollupInterval is how often the scheduler rebuilds stale sender rollups (runs
	// also follow enrichment batches, rollup applies and mapping changes).
	SenderRollupInterval time.Duration
	// SenderRebuildGap (VIGIL_SENDERS_REBUILD_MIN_INTERVAL) is the least time between the end
	// of one sender-rollup rebuild round and the start of the next in one process: while
	// reports keep arriving every round finds domains changed, and going round back to back
	// held the embedded SQLite writer against ingestion and enrichment.
	SenderRebuildGap time.Duration
}

func loadEnrich(e *env) Enrich {
	c := Enrich{
		GeoIPCityDB:          e.str("VIGIL_GEOIP_CITY_DB", ""),
		GeoIPASNDB:           e.str("VIGIL_GEOIP_ASN_DB", ""),
		GeoIPCheck:           e.duration("VIGIL_GEOIP_CHECK_INTERVAL", 30*time.Second),
		DNSResolver:          e.str("VIGIL_DNS_RESOLVER", ""),
		DNSTimeout:           e.duration("VIGIL_DNS_TIMEOUT", 2*time.Second),
		DNSConcurrency:       e.integer("VIGIL_DNS_CONCURRENCY", 64, 1, 4096),
		BatchSize:            e.integer("VIGIL_ENRICH_BATCH", 500, 1, 10000),
		PositiveTTL:          e.duration("VIGIL_ENRICH_POSITIVE_TTL", 7*24*time.Hour),
		NegativeTTL:          e.duration("VIGIL_ENRICH_NEGATIVE_TTL", 24*time.Hour),
		GeoTTL:               e.duration("VIGIL_GEOIP_CACHE_TTL", 90*24*time.Hour),
		RefreshInterval:      e.duration("VIGIL_ENRICH_REFRESH_INTERVAL", 7*24*time.Hour),
		SenderRollupInterval: e.duration("VIGIL_SENDER_ROLLUP_INTERVAL", 10*time.Minute),
		SenderRebuildGap:     e.duration("VIGIL_SENDERS_REBUILD_MIN_INTERVAL", 5*time.Second),
	}
	if c.SenderRebuildGap > time.Hour {
		e.fail("VIGIL_SENDERS_REBUILD_MIN_INTERVAL", c.SenderRebuildGap.String(), "want at most 1h (a pause, not a schedule: VIGIL_SENDER_ROLLUP_INTERVAL is the schedule)")
	}
	if c.DNSResolver != "" {
		if host, port, err := net.SplitHostPort(c.DNSResolver); err != nil || host == "" || port == "" {
			e.fail("VIGIL_DNS_RESOLVER", c.DNSResolver, "want host:port such as 127.0.0.1:53 or [2001:db8::53]:53")
		}
	}
	return c
}
