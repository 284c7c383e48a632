-- +goose Up
-- Alerting (issue 11, pkg/alerting and pkg/notify). Times are Unix seconds (BIGINT) so the
-- cooldown test, the durations of /alerts/stats and the day buckets are the same arithmetic
-- in both dialects.

-- Rules: what to look for, where, how loud, and whom to tell.
CREATE TABLE alert_rules (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    type             TEXT    NOT NULL,
    domain           TEXT,                          -- NULL: every domain
    params           TEXT    NOT NULL DEFAULT '{}', -- JSON, per type
    severity         TEXT    NOT NULL,
    cooldown_seconds INTEGER NOT NULL,
    channel_ids      TEXT    NOT NULL DEFAULT '[]', -- JSON list of alert_channels ids
    enabled          BOOLEAN NOT NULL DEFAULT FALSE,
    is_default       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

-- Where alerts go. config is the public part (JSON); secrets (webhook URLs of Teams, Slack and
-- Discord, HMAC keys) are sealed with VIGIL_ENCRYPTION_KEY like mailbox passwords.
CREATE TABLE alert_channels (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL,
    config        TEXT    NOT NULL DEFAULT '{}',
    secret_sealed BYTEA,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE alerts (
    id              BIGSERIAL PRIMARY KEY,
    rule_id         BIGINT REFERENCES alert_rules (id) ON DELETE SET NULL,
    type            TEXT   NOT NULL,
    severity        TEXT   NOT NULL,
    domain          TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    fingerprint     TEXT   NOT NULL,
    title           TEXT   NOT NULL,
    detail          TEXT   NOT NULL,
    data            TEXT   NOT NULL DEFAULT '{}', -- JSON: the figures behind the alert
    suppression_id  BIGINT,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    resolved_at     BIGINT,
    resolved_by     TEXT,
    note            TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX alerts_created_idx ON alerts (created_at);
CREATE INDEX alerts_status_idx ON alerts (status, created_at);
CREATE INDEX alerts_domain_idx ON alerts (domain, created_at);
CREATE INDEX alerts_fingerprint_idx ON alerts (fingerprint);

-- Every change of an alert: created, suppressed, acknowledged, resolved (who, when, note).
CREATE TABLE alert_events (
    id       BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       BIGINT NOT NULL,
    action   TEXT   NOT NULL,
    actor    TEXT   NOT NULL,
    note     TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);

-- One row per fingerprint: when it last raised an alert. Raising takes this row with a
-- conditional upsert, so of any number of concurrent evaluations exactly one raises per
-- cooldown.
CREATE TABLE alert_cooldowns (
    fingerprint TEXT   PRIMARY KEY,
    raised_at   BIGINT NOT NULL,
    alert_id    BIGINT
);

-- The outcome of each alert on each channel.
CREATE TABLE alert_deliveries (
    alert_id   BIGINT  NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel_id BIGINT  NOT NULL,
    status     TEXT    NOT NULL, -- pending, sent, failed
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT    NOT NULL DEFAULT '',
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (alert_id, channel_id)
);

-- Maintenance windows: one-off (starts_at..ends_at) or recurring (daily, or weekly on weekday,
-- from start_minute for duration_minutes, UTC) until expires_at.
CREATE TABLE alert_suppressions (
    id               BIGSERIAL PRIMARY KEY,
    domain           TEXT,
    type             TEXT,
    severity         TEXT,
    recurrence       TEXT    NOT NULL DEFAULT 'none',
    starts_at        BIGINT  NOT NULL,
    ends_at          BIGINT,
    weekday          INTEGER,
    start_minute     INTEGER NOT NULL DEFAULT 0,
    duration_minutes INTEGER NOT NULL DEFAULT 0,
    expires_at       BIGINT,
    note             TEXT    NOT NULL DEFAULT '',
    created_by       TEXT    NOT NULL DEFAULT '',
    created_at       BIGINT  NOT NULL
);

-- The default rules of a new install: off until a channel exists (the first channel created
-- turns on the ones nobody changed: alerting.AdoptDefaults). Params '{}': the type's defaults.
INSERT INTO alert_rules (name, type, domain, params, severity, cooldown_seconds, channel_ids, enabled, is_default, created_at, updated_at) VALUES
    ('Failure rate above 5% over 7 days', 'failure_rate', NULL, '{}', 'warning', 21600, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT),
    ('Volume spike (3x same-weekday median)', 'volume_spike', NULL, '{}', 'warning', 21600, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT),
    ('Volume drop (below half the same-weekday median)', 'volume_drop', NULL, '{}', 'warning', 21600, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT),
    ('New sending source', 'new_source', NULL, '{}', 'info', 86400, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT),
    ('Quarantined or rejected mail, or a changed policy', 'policy_violation', NULL, '{}', 'critical', 21600, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT),
    ('Reporter gone silent', 'missing_reports', NULL, '{}', 'warning', 86400, '[]', FALSE, TRUE, EXTRACT(EPOCH FROM now())::BIGINT, EXTRACT(EPOCH FROM now())::BIGINT);

-- +goose Down
DROP TABLE alert_suppressions;
DROP TABLE alert_deliveries;
DROP TABLE alert_cooldowns;
DROP TABLE alert_events;
DROP TABLE alerts;
DROP TABLE alert_channels;
DROP TABLE alert_rules;
