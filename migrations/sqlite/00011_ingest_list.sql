-- +goose Up
-- GET /api/ingests lists files newest first, whole or by status ("every failed file"), with an
-- optional received_at window: one index per order a filter takes, so a page never sorts the
-- whole table.
CREATE INDEX ingests_received_idx ON ingests (received_at, id);
CREATE INDEX ingests_status_received_idx ON ingests (status, received_at, id);

-- +goose Down
DROP INDEX ingests_status_received_idx;
DROP INDEX ingests_received_idx;
