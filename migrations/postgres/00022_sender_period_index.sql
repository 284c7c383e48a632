-- +goose Up
-- Sender rollup by period (issue 10): /api/senders for all domains reads, besides each
-- domain x group total, the rows before the window ("the last 365 days": one edge day) of
-- every domain. Through the primary keys (domain_id first) that was one index descent per
-- domain and table (1,000 domains: 4,000 descents, 0.2 s of a 0.5 s answer); these indexes
-- read each table's rows of the period range in one range scan.
CREATE INDEX rollup_sender_day_period_idx ON rollup_sender_day (dim, period);
CREATE INDEX rollup_sender_dekad_period_idx ON rollup_sender_dekad (dim, period);
CREATE INDEX rollup_sender_month_period_idx ON rollup_sender_month (dim, period);
CREATE INDEX rollup_sender_year_period_idx ON rollup_sender_year (dim, period);
CREATE INDEX rollup_sender_last_day_idx ON rollup_sender_last (dim, last_day);

-- +goose Down
DROP INDEX rollup_sender_last_day_idx;
DROP INDEX rollup_sender_year_period_idx;
DROP INDEX rollup_sender_month_period_idx;
DROP INDEX rollup_sender_dekad_period_idx;
DROP INDEX rollup_sender_day_period_idx;
