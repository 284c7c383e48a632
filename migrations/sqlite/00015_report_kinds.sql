-- +goose Up
-- The other two report kinds (issue 16): SMTP TLS reports (RFC 8460, pkg/tlsrpt) and DMARC
-- failure reports (RFC 6591 ARF, pkg/failure). Times are Unix seconds (BIGINT) and days are
-- Unix days (seconds / 86400), so filters, day buckets and sorting are the same arithmetic in
-- both dialects.

-- One row per distinct TLS report. Identity (RFC 8460 §4.4: report-id is unique per reporter
-- and period) is (lower-cased organization, report_id, begin, end): the same report by mail
-- and by HTTPS POST, or in another wrapper, is stored once.
CREATE TABLE tls_reports (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    ingest_id           BIGINT  NOT NULL REFERENCES ingests (id),
    organization_name   TEXT    NOT NULL,
    org_key             TEXT    NOT NULL,
    contact_info        TEXT    NOT NULL DEFAULT '',
    report_id           TEXT    NOT NULL,
    date_begin          BIGINT  NOT NULL,
    date_end            BIGINT  NOT NULL,
    policy_domain       TEXT    NOT NULL, -- the first policy's domain (nearly every report has one)
    policy_domains      TEXT    NOT NULL DEFAULT '[]', -- JSON list of every policy's domain
    successful_sessions BIGINT  NOT NULL,
    failed_sessions     BIGINT  NOT NULL,
    policies            TEXT    NOT NULL, -- JSON: the normalised policies with their failure details
    warnings            TEXT    NOT NULL DEFAULT '[]',
    created_at          BIGINT  NOT NULL,
    CONSTRAINT tls_reports_identity UNIQUE (org_key, report_id, date_begin, date_end)
);
CREATE INDEX tls_reports_begin_idx ON tls_reports (date_begin);
CREATE INDEX tls_reports_ingest_idx ON tls_reports (ingest_id);

-- One row per policy of a report: the domain filter and GET /api/rollup/tls read these.
CREATE TABLE tls_report_policies (
    tls_report_id       BIGINT  NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
    idx                 INTEGER NOT NULL,
    policy_type         TEXT    NOT NULL,
    policy_domain       TEXT    NOT NULL,
    day                 INTEGER NOT NULL, -- Unix day of the report's begin
    successful_sessions BIGINT  NOT NULL,
    failed_sessions     BIGINT  NOT NULL,
    PRIMARY KEY (tls_report_id, idx)
);
CREATE INDEX tls_report_policies_domain_day_idx ON tls_report_policies (policy_domain, day);
CREATE INDEX tls_report_policies_day_idx ON tls_report_policies (day);

-- One row per failure detail: failure types and the failing MX hosts of the rollup.
CREATE TABLE tls_report_failures (
    tls_report_id         BIGINT  NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
    policy_idx            INTEGER NOT NULL,
    idx                   INTEGER NOT NULL,
    policy_domain         TEXT    NOT NULL,
    day                   INTEGER NOT NULL,
    result_type           TEXT    NOT NULL,
    sending_mta_ip        TEXT    NOT NULL DEFAULT '',
    sending_mta_ip_bin    BLOB,            -- 16 bytes (IPv4 mapped), for the source_ip filters
    receiving_mx_hostname TEXT    NOT NULL DEFAULT '',
    receiving_ip          TEXT    NOT NULL DEFAULT '',
    failed_session_count  BIGINT  NOT NULL,
    PRIMARY KEY (tls_report_id, policy_idx, idx)
);
CREATE INDEX tls_report_failures_domain_day_idx ON tls_report_failures (policy_domain, day);
CREATE INDEX tls_report_failures_ip_idx ON tls_report_failures (sending_mta_ip_bin);

-- One row per distinct failure report. A failure report has no identifier of its own: its
-- identity is the SHA-256 of the report message's bytes, so the same message in another
-- wrapper (forwarded, zipped) is stored once. With redaction on (VIGIL_FAILURE_REDACT, the
-- default) the address local parts in every column are replaced and no body is kept.
CREATE TABLE failure_reports (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    ingest_id            BIGINT  NOT NULL REFERENCES ingests (id),
    content_sha256       CHAR(64) NOT NULL UNIQUE,
    format               TEXT    NOT NULL, -- arf | text (a plain-text report without an ARF part)
    domain               TEXT    NOT NULL DEFAULT '', -- Reported-Domain
    source_ip            TEXT    NOT NULL DEFAULT '', -- canonical text form, '' when absent
    source_ip_bin        BLOB,             -- 16 bytes (IPv4 mapped), for exact and CIDR filters
    arrival_date         BIGINT,           -- Unix seconds; NULL when the report has none
    sort_date            BIGINT  NOT NULL, -- arrival_date, else when the file was received
    auth_failure         TEXT    NOT NULL DEFAULT '', -- dmarc, dkim, spf, bodyhash, ...
    reported_by          TEXT    NOT NULL DEFAULT '', -- the reporter (From domain, else Reporting-MTA)
    feedback_type        TEXT    NOT NULL DEFAULT '',
    user_agent           TEXT    NOT NULL DEFAULT '',
    version              TEXT    NOT NULL DEFAULT '',
    original_mail_from   TEXT    NOT NULL DEFAULT '',
    original_rcpt_to     TEXT    NOT NULL DEFAULT '[]', -- JSON list
    original_envelope_id TEXT    NOT NULL DEFAULT '',
    authentication_results TEXT  NOT NULL DEFAULT '[]', -- JSON list
    dkim_domain          TEXT    NOT NULL DEFAULT '',
    dkim_identity        TEXT    NOT NULL DEFAULT '',
    dkim_selector        TEXT    NOT NULL DEFAULT '',
    spf_dns              TEXT    NOT NULL DEFAULT '',
    delivery_result      TEXT    NOT NULL DEFAULT '',
    identity_alignment   TEXT    NOT NULL DEFAULT '',
    dkim_result          TEXT    NOT NULL DEFAULT '', -- pass | fail | '' (from Authentication-Results)
    spf_result           TEXT    NOT NULL DEFAULT '',
    disposition          TEXT    NOT NULL DEFAULT '', -- none | quarantine | reject | '' (dis= of the DMARC result)
    reported_uri         TEXT    NOT NULL DEFAULT '[]', -- JSON list
    subject              TEXT    NOT NULL DEFAULT '', -- of the report message
    sample_headers       TEXT    NOT NULL DEFAULT '[]', -- JSON list of {name, value}
    sample_body          TEXT,             -- NULL unless redaction is off and a body was sent
    redacted             BOOLEAN NOT NULL,
    warnings             TEXT    NOT NULL DEFAULT '[]',
    created_at           BIGINT  NOT NULL
);
CREATE INDEX failure_reports_domain_date_idx ON failure_reports (domain, sort_date);
CREATE INDEX failure_reports_date_idx ON failure_reports (sort_date);
CREATE INDEX failure_reports_ip_idx ON failure_reports (source_ip_bin);
CREATE INDEX failure_reports_ingest_idx ON failure_reports (ingest_id);

-- +goose Down
DROP TABLE failure_reports;
DROP TABLE tls_report_failures;
DROP TABLE tls_report_policies;
DROP TABLE tls_reports;
