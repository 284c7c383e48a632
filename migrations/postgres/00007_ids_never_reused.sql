-- +goose Up
-- Ids are never reused (issue 18): on PostgreSQL every id column is a BIGSERIAL or SERIAL,
-- whose sequence never hands out a value twice, deletions or not. SQLite's migration 00007
-- rebuilds its tables with AUTOINCREMENT for the same guarantee; this one only keeps the two
-- dialects at the same schema version.
SELECT 1;

-- +goose Down
SELECT 1;
