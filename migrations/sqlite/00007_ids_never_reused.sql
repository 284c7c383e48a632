-- +goose Up
-- Ids are never reused (issue 18). Without AUTOINCREMENT SQLite gives a new row the largest id
-- plus one, so after the newest user, key or mailbox is deleted the next one gets its id, and
-- with it the history that names the old one (audit_log.actor_id, "user:N" targets). SQLite
-- cannot add AUTOINCREMENT to a table, so each table is rebuilt with its data. PostgreSQL's
-- BIGSERIAL sequences never hand out an id twice: its migration 00007 changes nothing.
--
-- The rebuild keeps foreign keys on: the children of users are copied into new tables that
-- point at the new users table before the old tables are dropped, so the drop of the old
-- users table (a DELETE to SQLite) has no child rows to cascade into. RENAME then points every
-- reference at the final names (SQLite >= 3.26 rewrites foreign keys on rename).

CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT        NOT NULL UNIQUE, -- stored lower-cased
    name          TEXT        NOT NULL DEFAULT '',
    password_hash TEXT        NOT NULL,        -- argon2id, PHC string format
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    active        BOOLEAN     NOT NULL DEFAULT TRUE,
    token_version BIGINT      NOT NULL DEFAULT 1,
    last_login_at DATETIME,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
INSERT INTO users_new (id, email, name, password_hash, role, active, token_version, last_login_at, created_at, updated_at)
    SELECT id, email, name, password_hash, role, active, token_version, last_login_at, created_at, updated_at FROM users;

CREATE TABLE auth_sessions_new (
    id             TEXT        PRIMARY KEY,
    user_id        BIGINT      NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    generation     BIGINT      NOT NULL DEFAULT 1,
    ip             TEXT        NOT NULL DEFAULT '',
    user_agent     TEXT        NOT NULL DEFAULT '',
    created_at     DATETIME NOT NULL,
    refreshed_at   DATETIME NOT NULL,
    expires_at     DATETIME NOT NULL,
    revoked_at     DATETIME,
    revoked_reason TEXT        NOT NULL DEFAULT ''
);
INSERT INTO auth_sessions_new (id, user_id, generation, ip, user_agent, created_at, refreshed_at, expires_at, revoked_at, revoked_reason)
    SELECT id, user_id, generation, ip, user_agent, created_at, refreshed_at, expires_at, revoked_at, revoked_reason FROM auth_sessions;

CREATE TABLE api_keys_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT      NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    prefix       TEXT        NOT NULL,
    key_hash     TEXT        NOT NULL UNIQUE,
    role         TEXT        NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME,
    last_used_at DATETIME,
    revoked_at   DATETIME
);
INSERT INTO api_keys_new (id, user_id, name, prefix, key_hash, role, created_at, expires_at, last_used_at, revoked_at)
    SELECT id, user_id, name, prefix, key_hash, role, created_at, expires_at, last_used_at, revoked_at FROM api_keys;

CREATE TABLE audit_log_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         DATETIME NOT NULL,
    actor_id   BIGINT,
    actor      TEXT        NOT NULL DEFAULT '',
    api_key_id BIGINT,
    action     TEXT        NOT NULL,
    outcome    TEXT        NOT NULL,
    target     TEXT        NOT NULL DEFAULT '',
    ip         TEXT        NOT NULL DEFAULT '',
    details    TEXT        NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_new (id, at, actor_id, actor, api_key_id, action, outcome, target, ip, details)
    SELECT id, at, actor_id, actor, api_key_id, action, outcome, target, ip, details FROM audit_log;

CREATE TABLE mailboxes_new (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT        NOT NULL UNIQUE,
    source                TEXT        NOT NULL CHECK (source IN ('env', 'api')),
    host                  TEXT        NOT NULL,
    port                  INTEGER     NOT NULL,
    username              TEXT        NOT NULL,
    folder                TEXT        NOT NULL,
    uid_validity          BIGINT      NOT NULL DEFAULT 0,
    last_uid              BIGINT      NOT NULL DEFAULT 0,
    last_poll_at          DATETIME,
    last_success_at       DATETIME,
    last_error            TEXT        NOT NULL DEFAULT '',
    last_result           TEXT        NOT NULL DEFAULT '{}',
    consecutive_failures  INTEGER     NOT NULL DEFAULT 0,
    poll_lease_until      DATETIME,
    created_at            DATETIME NOT NULL,
    updated_at            DATETIME NOT NULL,
    enabled               BOOLEAN NOT NULL DEFAULT 1,
    tls                   TEXT NOT NULL DEFAULT 'tls',
    allow_plain           BOOLEAN NOT NULL DEFAULT 0,
    archive_folder        TEXT NOT NULL DEFAULT 'Archive',
    invalid_folder        TEXT NOT NULL DEFAULT 'Invalid',
    policy                TEXT NOT NULL DEFAULT 'move',
    batch_size            INTEGER NOT NULL DEFAULT 0,
    poll_interval_seconds INTEGER NOT NULL DEFAULT 0,
    oauth2_token_file     TEXT NOT NULL DEFAULT '',
    ca_pem                TEXT NOT NULL DEFAULT '',
    password_sealed       BLOB,
    progress              TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO mailboxes_new (id, name, source, host, port, username, folder, uid_validity, last_uid, last_poll_at,
        last_success_at, last_error, last_result, consecutive_failures, poll_lease_until, created_at, updated_at,
        enabled, tls, allow_plain, archive_folder, invalid_folder, policy, batch_size, poll_interval_seconds,
        oauth2_token_file, ca_pem, password_sealed, progress)
    SELECT id, name, source, host, port, username, folder, uid_validity, last_uid, last_poll_at,
        last_success_at, last_error, last_result, consecutive_failures, poll_lease_until, created_at, updated_at,
        enabled, tls, allow_plain, archive_folder, invalid_folder, policy, batch_size, poll_interval_seconds,
        oauth2_token_file, ca_pem, password_sealed, progress FROM mailboxes;

DROP TABLE auth_sessions;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE audit_log;
DROP TABLE mailboxes;
ALTER TABLE users_new RENAME TO users;
ALTER TABLE auth_sessions_new RENAME TO auth_sessions;
ALTER TABLE api_keys_new RENAME TO api_keys;
ALTER TABLE audit_log_new RENAME TO audit_log;
ALTER TABLE mailboxes_new RENAME TO mailboxes;
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_action_idx ON audit_log (action, at);

-- Ids deleted before this migration are not reused either, as far as the audit log remembers
-- them: each counter starts above the largest id the log names.
INSERT INTO sqlite_sequence (name, seq)
    SELECT t.name, 0 FROM (SELECT 'users' AS name UNION ALL SELECT 'api_keys' UNION ALL SELECT 'mailboxes' UNION ALL SELECT 'audit_log') AS t
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence s WHERE s.name = t.name);
UPDATE sqlite_sequence SET seq = max(seq,
    coalesce((SELECT max(id) FROM users), 0),
    coalesce((SELECT max(actor_id) FROM audit_log), 0),
    coalesce((SELECT max(CAST(substr(target, 6) AS INTEGER)) FROM audit_log WHERE target LIKE 'user:%'), 0))
    WHERE name = 'users';
UPDATE sqlite_sequence SET seq = max(seq,
    coalesce((SELECT max(id) FROM api_keys), 0),
    coalesce((SELECT max(api_key_id) FROM audit_log), 0),
    coalesce((SELECT max(CAST(substr(target, 5) AS INTEGER)) FROM audit_log WHERE target LIKE 'key:%'), 0))
    WHERE name = 'api_keys';
UPDATE sqlite_sequence SET seq = max(seq,
    coalesce((SELECT max(id) FROM mailboxes), 0),
    coalesce((SELECT max(CAST(substr(target, 9) AS INTEGER)) FROM audit_log WHERE target LIKE 'mailbox:%'), 0))
    WHERE name = 'mailboxes';
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(id) FROM audit_log), 0)) WHERE name = 'audit_log';

-- +goose Down
-- AUTOINCREMENT is kept: the tables are otherwise those of migration 00006, and the schema
-- before this migration works with it unchanged.
SELECT 1;
