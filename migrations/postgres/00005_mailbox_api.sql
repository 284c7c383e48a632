-- +goose Up
-- Mailboxes managed through the API (issue 5): every setting the poller needs, and the password
-- sealed with VIGIL_ENCRYPTION_KEY (pkg/secretbox, AES-256-GCM). The env mailbox keeps its
-- settings and secrets in the environment; for it these columns are only informative.
ALTER TABLE mailboxes ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE mailboxes ADD COLUMN tls TEXT NOT NULL DEFAULT 'tls';
ALTER TABLE mailboxes ADD COLUMN allow_plain BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE mailboxes ADD COLUMN archive_folder TEXT NOT NULL DEFAULT 'Archive';
ALTER TABLE mailboxes ADD COLUMN invalid_folder TEXT NOT NULL DEFAULT 'Invalid';
ALTER TABLE mailboxes ADD COLUMN policy TEXT NOT NULL DEFAULT 'move';
ALTER TABLE mailboxes ADD COLUMN batch_size INTEGER NOT NULL DEFAULT 0;            -- 0: the poller's default
ALTER TABLE mailboxes ADD COLUMN poll_interval_seconds INTEGER NOT NULL DEFAULT 0; -- 0: VIGIL_IMAP_POLL_INTERVAL
-- A file name inside VIGIL_IMAP_TOKEN_DIR (XOAUTH2), never a path: see pkg/mailpoll.
ALTER TABLE mailboxes ADD COLUMN oauth2_token_file TEXT NOT NULL DEFAULT '';
-- CA certificates are public: kept in clear.
ALTER TABLE mailboxes ADD COLUMN ca_pem TEXT NOT NULL DEFAULT '';
-- The sealed password (version, key id, nonce, ciphertext); NULL: none.
ALTER TABLE mailboxes ADD COLUMN password_sealed BYTEA;
-- Progress of the poll running now (JSON: done, total), for GET /api/mailboxes/{id}.
ALTER TABLE mailboxes ADD COLUMN progress TEXT NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE mailboxes DROP COLUMN progress;
ALTER TABLE mailboxes DROP COLUMN password_sealed;
ALTER TABLE mailboxes DROP COLUMN ca_pem;
ALTER TABLE mailboxes DROP COLUMN oauth2_token_file;
ALTER TABLE mailboxes DROP COLUMN poll_interval_seconds;
ALTER TABLE mailboxes DROP COLUMN batch_size;
ALTER TABLE mailboxes DROP COLUMN policy;
ALTER TABLE mailboxes DROP COLUMN invalid_folder;
ALTER TABLE mailboxes DROP COLUMN archive_folder;
ALTER TABLE mailboxes DROP COLUMN allow_plain;
ALTER TABLE mailboxes DROP COLUMN tls;
ALTER TABLE mailboxes DROP COLUMN enabled;
