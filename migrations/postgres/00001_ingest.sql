-- +goose Up
-- One row per distinct raw file (same bytes twice = one row, keyed by SHA-256).
CREATE TABLE ingests (
    id           BIGSERIAL PRIMARY KEY,
    sha256       CHAR(64)    NOT NULL UNIQUE,
    filename     TEXT        NOT NULL DEFAULT '',
    source       TEXT        NOT NULL,
    source_ref   TEXT        NOT NULL DEFAULT '',
    size_bytes   BIGINT      NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('pending', 'processed', 'duplicate', 'failed')),
    error        TEXT        NOT NULL DEFAULT '',
    report_count INTEGER     NOT NULL DEFAULT 0,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    received_at  TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    processed_at TIMESTAMPTZ
);
-- The sweep looks only at pending files; a partial index keeps that cheap on years of history.
CREATE INDEX ingests_pending_idx ON ingests (updated_at) WHERE status = 'pending';

-- Originals are kept apart from the metadata so listing ingests never drags the bytes along.
CREATE TABLE raw_files (
    ingest_id BIGINT PRIMARY KEY REFERENCES ingests (id) ON DELETE CASCADE,
    encoding  TEXT  NOT NULL,
    data      BYTEA NOT NULL
);
-- Originals are stored gzipped (or already compressed): pglz would only burn CPU trying again.
ALTER TABLE raw_files ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE reports (
    id                      BIGSERIAL PRIMARY KEY,
    ingest_id               BIGINT      NOT NULL REFERENCES ingests (id),
    org_name                TEXT        NOT NULL,
    org_key                 TEXT        NOT NULL,
    email                   TEXT        NOT NULL DEFAULT '',
    extra_contact_info      TEXT        NOT NULL DEFAULT '',
    report_id               TEXT        NOT NULL,
    domain                  TEXT        NOT NULL,
    date_begin              TIMESTAMPTZ NOT NULL,
    date_end                TIMESTAMPTZ NOT NULL,
    version                 TEXT        NOT NULL DEFAULT '',
    namespace               TEXT        NOT NULL DEFAULT '',
    generator               TEXT        NOT NULL DEFAULT '',
    errors                  TEXT        NOT NULL DEFAULT '[]',
    policy_p                TEXT        NOT NULL DEFAULT '',
    policy_sp               TEXT        NOT NULL DEFAULT '',
    policy_np               TEXT        NOT NULL DEFAULT '',
    policy_adkim            TEXT        NOT NULL DEFAULT '',
    policy_aspf             TEXT        NOT NULL DEFAULT '',
    policy_pct              INTEGER,
    policy_fo               TEXT        NOT NULL DEFAULT '',
    policy_testing          TEXT        NOT NULL DEFAULT '',
    policy_discovery_method TEXT        NOT NULL DEFAULT '',
    record_count            INTEGER     NOT NULL DEFAULT 0,
    message_count           BIGINT      NOT NULL DEFAULT 0,
    warnings                TEXT        NOT NULL DEFAULT '[]',
    created_at              TIMESTAMPTZ NOT NULL,
    -- Report identity (DESIGN.md): the same report in another wrapper is a duplicate.
    CONSTRAINT reports_identity UNIQUE (org_key, report_id, domain, date_begin, date_end)
);
CREATE INDEX reports_domain_begin_idx ON reports (domain, date_begin);
CREATE INDEX reports_begin_idx ON reports (date_begin);
CREATE INDEX reports_ingest_idx ON reports (ingest_id);

-- Which reports a file yielded, including those it only repeated (duplicate = true).
CREATE TABLE ingest_reports (
    ingest_id BIGINT  NOT NULL REFERENCES ingests (id) ON DELETE CASCADE,
    report_id BIGINT  NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    duplicate BOOLEAN NOT NULL,
    PRIMARY KEY (ingest_id, report_id)
);

CREATE TABLE records (
    id            BIGSERIAL PRIMARY KEY,
    -- No foreign key: records are only ever inserted by the statement or transaction that
    -- inserts their report, and checking the key per row cost PostgreSQL a quarter of its
    -- ingestion time. Deleting a report must delete its records (records_report_idx).
    report_id     BIGINT NOT NULL,
    source_ip     TEXT   NOT NULL,
    -- 16-byte form (IPv4 mapped into IPv6) so exact and CIDR filters are byte-range scans on
    -- one index in both dialects.
    ip            BYTEA  NOT NULL,
    count         BIGINT NOT NULL,
    disposition   TEXT   NOT NULL DEFAULT '',
    dkim          TEXT   NOT NULL DEFAULT '',
    spf           TEXT   NOT NULL DEFAULT '',
    header_from   TEXT   NOT NULL DEFAULT '',
    envelope_from TEXT   NOT NULL DEFAULT '',
    envelope_to   TEXT   NOT NULL DEFAULT '',
    reasons       TEXT   NOT NULL DEFAULT '[]',
    dkim_results  TEXT   NOT NULL DEFAULT '[]',
    spf_results   TEXT   NOT NULL DEFAULT '[]'
);
CREATE INDEX records_report_idx ON records (report_id);
CREATE INDEX records_ip_idx ON records (ip);

-- +goose Down
DROP TABLE records;
DROP TABLE ingest_reports;
DROP TABLE reports;
DROP TABLE raw_files;
DROP TABLE ingests;
