-- +goose Up
-- Sender rollup totals (issue 10): a window running to the data's end that holds most of the
-- data is answered as each pair's total less the rows before the window, which reads about
-- one row per domain x group instead of a year's periods.
--
-- One row per policy domain (0: all domains' countries) x dim x group: the sums of all time,
-- the first and last day, and the number of distinct sources.
CREATE TABLE rollup_sender_total (
    domain_id  INTEGER NOT NULL,
    dim        INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    messages   INTEGER NOT NULL,
    dmarc_pass INTEGER NOT NULL,
    dkim_pass  INTEGER NOT NULL,
    spf_pass   INTEGER NOT NULL,
    both_pass  INTEGER NOT NULL,
    first_day  INTEGER NOT NULL,
    last_day   INTEGER NOT NULL,
    ips        INTEGER NOT NULL,
    PRIMARY KEY (domain_id, dim, key_id)
);
-- next_day: the first day of the group's next row in the same table (NULL: none), i.e. the
-- first day with data after the row's period. The rows before a window give the first day
-- seen inside it (the greatest next_day).
ALTER TABLE rollup_sender_day ADD COLUMN next_day INTEGER;
ALTER TABLE rollup_sender_dekad ADD COLUMN next_day INTEGER;
ALTER TABLE rollup_sender_month ADD COLUMN next_day INTEGER;
ALTER TABLE rollup_sender_year ADD COLUMN next_day INTEGER;
-- The first day of a domain's rows, to choose which side of a window reads fewer rows.
ALTER TABLE rollup_sender_state ADD COLUMN min_day INTEGER NOT NULL DEFAULT 0;
-- Rows built before lack the totals and next days: every domain is rebuilt by the next
-- senders:rollup run (answered from the per-source rollups until then).
DELETE FROM rollup_sender_state;

-- +goose Down
ALTER TABLE rollup_sender_state DROP COLUMN min_day;
ALTER TABLE rollup_sender_year DROP COLUMN next_day;
ALTER TABLE rollup_sender_month DROP COLUMN next_day;
ALTER TABLE rollup_sender_dekad DROP COLUMN next_day;
ALTER TABLE rollup_sender_day DROP COLUMN next_day;
DROP TABLE rollup_sender_total;
