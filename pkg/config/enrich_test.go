package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnrichConfig(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Enrich{GeoIPCheck: 30 * time.Second, DNSTimeout: 2 * time.Second, DNSConcurrency: 64, BatchSize: 500,
		PositiveTTL: 7 * 24 * time.Hour, NegativeTTL: 24 * time.Hour, GeoTTL: 90 * 24 * time.Hour, RefreshInterval: 7 * 24 * time.Hour,
		SenderRollupInterval: 10 * time.Minute, SenderRebuildGap: 5 * time.Second}
	if c.Enrich != want {
		t.Fatalf("defaults: %+v, want %+v", c.Enrich, want)
	}
	c, err = Load(envOf(map[string]string{"VIGIL_DNS_RESOLVER": "[::1]:5353", "VIGIL_GEOIP_CITY_DB": "/geo/city.mmdb",
		"VIGIL_GEOIP_ASN_DB": "/geo/asn.mmdb", "VIGIL_ENRICH_NEGATIVE_TTL": "2h"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enrich.DNSResolver != "[::1]:5353" || c.Enrich.GeoIPCityDB != "/geo/city.mmdb" || c.Enrich.GeoIPASNDB != "/geo/asn.mmdb" || c.Enrich.NegativeTTL != 2*time.Hour {
		t.Fatalf("values: %+v", c.Enrich)
	}
	for name, env := range map[string]map[string]string{
		"VIGIL_DNS_RESOLVER":                      {"VIGIL_DNS_RESOLVER": "8.8.8.8"},
		"VIGIL_DNS_CONCURRENCY":                   {"VIGIL_DNS_CONCURRENCY": "0"},
		"VIGIL_DNS_TIMEOUT":                       {"VIGIL_DNS_TIMEOUT": "soon"},
		"VIGIL_ENRICH_POSITIVE_TTL":               {"VIGIL_ENRICH_POSITIVE_TTL": "-1h"},
		"VIGIL_ENRICH_BATCH":                      {"VIGIL_ENRICH_BATCH": "100000"},
		"VIGIL_SENDERS_REBUILD_MIN_INTERVAL":      {"VIGIL_SENDERS_REBUILD_MIN_INTERVAL": "2h"},
		`VIGIL_SENDERS_REBUILD_MIN_INTERVAL="0s"`: {"VIGIL_SENDERS_REBUILD_MIN_INTERVAL": "0s"},
	} {
		_, err := Load(envOf(env))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v, want ErrInvalid naming %s", env, err, name)
		}
	}
}
