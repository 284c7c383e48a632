-- +goose Up
-- Sender rollup (issue 10, pkg/senders): what /api/senders and the country map read instead of
-- summing every source of the window and joining it to its enrichment.
--
-- sender_groups are the keys sources are grouped under: dim 1 a sender group (a named
-- service, the base domain of unknown PTR names, the AS of the rest, "not enriched yet"),
-- dim 2 a country ('' = unknown). Ids are never reused.
CREATE TABLE sender_groups (
    id          SERIAL PRIMARY KEY,
    dim         SMALLINT NOT NULL,
    key         TEXT NOT NULL,
    sender      TEXT,
    sender_type TEXT NOT NULL DEFAULT 'unknown',
    base_domain TEXT,
    asn         BIGINT,
    as_org      TEXT,
    name        TEXT,
    pending     BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (dim, key)
);
-- One row per known source (rollup_ips.id): its groups, and the values the sender, country
-- and asn filters select on (sender in lower case), and what a named group shows when all its
-- sources share it (base_domain, asn, as_org). enriched_at is the enrich_ips.updated_at
-- the row was derived from (-1: derive again, e.g. after a mapping change).
CREATE TABLE sender_sources (
    ip_id       INTEGER PRIMARY KEY,
    group_id    INTEGER NOT NULL,
    country_id  INTEGER NOT NULL,
    sender      TEXT,
    country     TEXT,
    asn         BIGINT,
    base_domain TEXT,
    as_org      TEXT,
    enriched_at BIGINT NOT NULL
);
CREATE INDEX sender_sources_sender_idx ON sender_sources (sender);
CREATE INDEX sender_sources_country_idx ON sender_sources (country);
CREATE INDEX sender_sources_asn_idx ON sender_sources (asn);
-- Bumped for a domain (0: all domains) whenever a source of it changes group, so a rollup built
-- before is known to be stale.
CREATE TABLE sender_versions (
    domain_id INTEGER PRIMARY KEY,
    version   BIGINT NOT NULL
);
-- What each domain's rollup rows were built from: its report count in the rollups and its
-- version. A domain whose numbers differ now is answered from the per-source rollups.
CREATE TABLE rollup_sender_state (
    domain_id INTEGER PRIMARY KEY,
    reports   BIGINT NOT NULL,
    version   BIGINT NOT NULL,
    max_day   INTEGER NOT NULL,
    built_at  BIGINT NOT NULL
);
CREATE TABLE rollup_sender_day (
    domain_id  INTEGER NOT NULL,
    dim        SMALLINT NOT NULL,
    period     INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    messages   BIGINT NOT NULL,
    dmarc_pass BIGINT NOT NULL,
    dkim_pass  BIGINT NOT NULL,
    spf_pass   BIGINT NOT NULL,
    both_pass  BIGINT NOT NULL,
    first_day  INTEGER NOT NULL,
    last_day   INTEGER NOT NULL,
    PRIMARY KEY (domain_id, dim, period, key_id)
);
CREATE TABLE rollup_sender_dekad (
    domain_id  INTEGER NOT NULL,
    dim        SMALLINT NOT NULL,
    period     INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    messages   BIGINT NOT NULL,
    dmarc_pass BIGINT NOT NULL,
    dkim_pass  BIGINT NOT NULL,
    spf_pass   BIGINT NOT NULL,
    both_pass  BIGINT NOT NULL,
    first_day  INTEGER NOT NULL,
    last_day   INTEGER NOT NULL,
    PRIMARY KEY (domain_id, dim, period, key_id)
);
CREATE TABLE rollup_sender_month (
    domain_id  INTEGER NOT NULL,
    dim        SMALLINT NOT NULL,
    period     INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    messages   BIGINT NOT NULL,
    dmarc_pass BIGINT NOT NULL,
    dkim_pass  BIGINT NOT NULL,
    spf_pass   BIGINT NOT NULL,
    both_pass  BIGINT NOT NULL,
    first_day  INTEGER NOT NULL,
    last_day   INTEGER NOT NULL,
    PRIMARY KEY (domain_id, dim, period, key_id)
);
CREATE TABLE rollup_sender_year (
    domain_id  INTEGER NOT NULL,
    dim        SMALLINT NOT NULL,
    period     INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    messages   BIGINT NOT NULL,
    dmarc_pass BIGINT NOT NULL,
    dkim_pass  BIGINT NOT NULL,
    spf_pass   BIGINT NOT NULL,
    both_pass  BIGINT NOT NULL,
    first_day  INTEGER NOT NULL,
    last_day   INTEGER NOT NULL,
    PRIMARY KEY (domain_id, dim, period, key_id)
);
-- (dekad: days 1-10, 11-20, 21-end of a month, period its first day, so a window's edges read
-- a few dekads and days instead of up to a month of days.)
-- Sources by the last day they sent (per domain and group): the distinct sources of a window
-- that runs to today are those whose last day lies in it.
CREATE TABLE rollup_sender_last (
    domain_id INTEGER NOT NULL,
    dim       SMALLINT NOT NULL,
    last_day  INTEGER NOT NULL,
    key_id    INTEGER NOT NULL,
    ips       BIGINT NOT NULL,
    PRIMARY KEY (domain_id, dim, last_day, key_id)
);

-- +goose Down
DROP TABLE rollup_sender_last;
DROP TABLE rollup_sender_year;
DROP TABLE rollup_sender_month;
DROP TABLE rollup_sender_dekad;
DROP TABLE rollup_sender_day;
DROP TABLE rollup_sender_state;
DROP TABLE sender_versions;
DROP TABLE sender_sources;
DROP TABLE sender_groups;
