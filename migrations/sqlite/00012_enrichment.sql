-- +goose Up
-- Sender intelligence (issue 10, pkg/enrich and pkg/senders).
-- The enrichment cache: one row per source address (the 16-byte form of records.ip and
-- rollup_ips.ip, so it joins on the address index). DNS results (PTR, forward confirmation)
-- and GeoIP results expire separately: times are Unix seconds; geo_expires 0 means the
-- databases were missing when the row was written, so the next run looks again.
CREATE TABLE enrich_ips (
    ip            BLOB PRIMARY KEY,
    ptr           TEXT,
    ptr_confirmed BOOLEAN NOT NULL DEFAULT 0,
    base_domain   TEXT,
    residential   BOOLEAN NOT NULL DEFAULT 0,
    dns_status    TEXT NOT NULL DEFAULT '',
    dns_expires   BIGINT NOT NULL DEFAULT 0,
    asn           BIGINT,
    as_org        TEXT,
    country       TEXT,
    country_name  TEXT,
    region        TEXT,
    city          TEXT,
    latitude      REAL,
    longitude     REAL,
    time_zone     TEXT,
    geo_expires   BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX enrich_ips_dns_expires_idx ON enrich_ips (dns_expires);
CREATE INDEX enrich_ips_base_domain_idx ON enrich_ips (base_domain);
CREATE INDEX enrich_ips_asn_idx ON enrich_ips (asn);
CREATE INDEX enrich_ips_country_idx ON enrich_ips (country);

-- Named-sender mappings an admin added or overrode (on top of pkg/senders/senders.json).
CREATE TABLE sender_mappings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    pattern    TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, pattern)
);

-- +goose Down
DROP TABLE sender_mappings;
DROP TABLE enrich_ips;
