-- +goose Up
-- Exports and scheduled digests (issue 12, pkg/export and pkg/digest). Times are Unix seconds
-- (BIGINT), as in alerting, so retention and period arithmetic is the same in both dialects.

-- A large export rendered by an export:render task: who asked (only they, or an admin, may
-- download it), what (view, format, filters as JSON), and the file once written. The row is
-- the task's idempotency: a retried task finds the file done and answers it again.
CREATE TABLE export_files (
    id          TEXT    PRIMARY KEY,            -- random, also in the task id and download URL
    user_id     BIGINT  NOT NULL,
    view        TEXT    NOT NULL,               -- reports, records, sources, workbook, report
    format      TEXT    NOT NULL,               -- csv, xlsx, pdf
    filters     TEXT    NOT NULL DEFAULT '{}',
    status      TEXT    NOT NULL DEFAULT 'pending', -- pending, done, failed
    filename    TEXT    NOT NULL DEFAULT '',
    rows_count  BIGINT  NOT NULL DEFAULT 0,
    size_bytes  BIGINT  NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX export_files_expires_idx ON export_files (expires_at);

-- A user's digest: the domains (empty: all), how often, which attachments, where to.
CREATE TABLE digest_subscriptions (
    id         INTEGER PRIMARY KEY,
    user_id    BIGINT  NOT NULL,
    email      TEXT    NOT NULL,
    frequency  TEXT    NOT NULL,                -- weekly, monthly
    domains    TEXT    NOT NULL DEFAULT '[]',   -- JSON list
    formats    TEXT    NOT NULL DEFAULT '["pdf"]', -- JSON list of pdf, xlsx
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT  NOT NULL
);
CREATE INDEX digest_subscriptions_user_idx ON digest_subscriptions (user_id);

-- One row per subscription and period sent: the UNIQUE key is what makes a period go out once,
-- however many ticks, workers or retries there are.
CREATE TABLE digest_deliveries (
    subscription_id BIGINT NOT NULL REFERENCES digest_subscriptions (id) ON DELETE CASCADE,
    period_start    BIGINT NOT NULL,
    status          TEXT   NOT NULL,            -- sending, sent
    sent_at         BIGINT,
    PRIMARY KEY (subscription_id, period_start)
);

-- +goose Down
DROP TABLE digest_deliveries;
DROP TABLE digest_subscriptions;
DROP TABLE export_files;
