-- +goose Up
-- IMAP mailboxes the pipeline polls (pkg/mailpoll): the one from VIGIL_IMAP_* (source 'env',
-- name 'env'), later ones managed through the API (source 'api'). Each row remembers how far
-- the poller got (uid_validity, last_uid: mailbox.State) and the outcome of the last poll.
-- Credentials of API-managed mailboxes (password, OAuth2 token source, CA) are not stored yet:
-- they need encryption at rest and come with the mailbox API (issue 5). The env mailbox keeps
-- its secrets in the environment only.
CREATE TABLE mailboxes (
    id                   BIGSERIAL PRIMARY KEY,
    name                 TEXT        NOT NULL UNIQUE,
    source               TEXT        NOT NULL CHECK (source IN ('env', 'api')),
    host                 TEXT        NOT NULL,
    port                 INTEGER     NOT NULL,
    username             TEXT        NOT NULL,
    folder               TEXT        NOT NULL,
    -- mailbox.State: UIDs are only meaningful within one UIDVALIDITY; 0 = read the folder anew.
    uid_validity         BIGINT      NOT NULL DEFAULT 0,
    last_uid             BIGINT      NOT NULL DEFAULT 0,
    last_poll_at         TIMESTAMPTZ,
    last_success_at      TIMESTAMPTZ,
    last_error           TEXT        NOT NULL DEFAULT '',
    last_result          TEXT        NOT NULL DEFAULT '{}', -- JSON counts of the last poll
    consecutive_failures INTEGER     NOT NULL DEFAULT 0,
    -- One poll per mailbox at a time: a poll takes the row while this is in the past or NULL.
    poll_lease_until     TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE mailboxes;
