-- +goose Up
-- GET /api/reports?sort= orders by reporter or by message count as well as by date: with
-- these, a sorted page reads an index in order (forwards or backwards) instead of sorting
-- every report (date_begin and domain already lead indexes of 00001).
CREATE INDEX reports_org_key_idx ON reports (org_key, id);
CREATE INDEX reports_messages_idx ON reports (message_count, id);

-- +goose Down
DROP INDEX reports_messages_idx;
DROP INDEX reports_org_key_idx;
