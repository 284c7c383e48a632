-- +goose Up
-- Sender totals by size (issue 10): a page of /api/senders for a window running to the data's
-- end reads the groups with the largest all-time totals first (a group's messages in such a
-- window never exceed its total), the pending and unknown groups of each domain by group, and
-- counts the items by last day, instead of ranking every domain x group item.
CREATE INDEX rollup_sender_total_messages_idx ON rollup_sender_total (dim, messages DESC);
CREATE INDEX rollup_sender_total_key_idx ON rollup_sender_total (dim, key_id);
CREATE INDEX rollup_sender_total_last_idx ON rollup_sender_total (dim, last_day);

-- +goose Down
DROP INDEX rollup_sender_total_last_idx;
DROP INDEX rollup_sender_total_key_idx;
DROP INDEX rollup_sender_total_messages_idx;
