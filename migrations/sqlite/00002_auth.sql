-- +goose Up
-- People who log in. No self-registration: admins (or the first-start bootstrap) create them.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT        NOT NULL UNIQUE, -- stored lower-cased
    name          TEXT        NOT NULL DEFAULT '',
    password_hash TEXT        NOT NULL,        -- argon2id, PHC string format
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    active        BOOLEAN     NOT NULL DEFAULT TRUE,
    -- Bumped by a password change, deactivation or role change: every access token carries
    -- the version it was issued under and dies with it.
    token_version BIGINT      NOT NULL DEFAULT 1,
    last_login_at DATETIME,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);

-- One row per login: a refresh-token family (RFC 9700 §4.14). generation is the only refresh
-- token of the family still valid; presenting an older one revokes the family.
CREATE TABLE auth_sessions (
    id             TEXT        PRIMARY KEY,
    user_id        BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation     BIGINT      NOT NULL DEFAULT 1,
    ip             TEXT        NOT NULL DEFAULT '',
    user_agent     TEXT        NOT NULL DEFAULT '',
    created_at     DATETIME NOT NULL,
    refreshed_at   DATETIME NOT NULL,
    expires_at     DATETIME NOT NULL,
    revoked_at     DATETIME,
    revoked_reason TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

-- API keys for scripts: only the SHA-256 of the key is kept; the key is shown once.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    prefix       TEXT        NOT NULL, -- the first characters, so a user can tell keys apart
    key_hash     TEXT        NOT NULL UNIQUE,
    role         TEXT        NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME,
    last_used_at DATETIME,
    revoked_at   DATETIME
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Who did what, when, from where. actor is copied (not a foreign key) so history outlives users.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
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
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_action_idx ON audit_log (action, at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE api_keys;
DROP TABLE auth_sessions;
DROP TABLE users;
