-- +goose Up
-- Narrow rollups (pkg/rollup: the families of migration 6). Generated from rollup.Families by
-- `go test ./pkg/rollup -run TestMigrationMatchesFamilies -update`.
-- Ranking and counting the sources of a window reads one row per source and period here, not
-- one per outcome and policy, and counting its reports one row per domain or reporter, not one
-- per set of outcomes; whole years, quarters, months and dekads (days 1-10, 11-20, 21-end of a
-- month) come from their own tables, period being the period's first day, and finer rows from
-- the families these narrow. The tables are filled from those families' rows, so they hold the
-- same reports; stop workers of older versions before migrating (they would not write here).
CREATE TABLE rollup_ip_dekad (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (period, ip_id)
);
CREATE INDEX rollup_ip_dekad_ip_id_period_idx ON rollup_ip_dekad (ip_id, period);
CREATE TABLE rollup_ip_month (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (period, ip_id)
);
CREATE INDEX rollup_ip_month_ip_id_period_idx ON rollup_ip_month (ip_id, period);
CREATE TABLE rollup_ip_quarter (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (period, ip_id)
);
CREATE INDEX rollup_ip_quarter_ip_id_period_idx ON rollup_ip_quarter (ip_id, period);
CREATE TABLE rollup_ip_year (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (period, ip_id)
);
CREATE INDEX rollup_ip_year_ip_id_period_idx ON rollup_ip_year (ip_id, period);
CREATE TABLE rollup_ip_domain_year (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (domain_id, period, ip_id)
);
CREATE INDEX rollup_ip_domain_year_ip_id_domain_id_period_idx ON rollup_ip_domain_year (ip_id, domain_id, period);
CREATE TABLE rollup_ip_org_year (
    ip_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (ip_id, period, org_id)
);
CREATE INDEX rollup_ip_org_year_org_id_period_idx ON rollup_ip_org_year (org_id, period);
CREATE TABLE rollup_rep_domain_total_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period)
);
CREATE INDEX rollup_rep_domain_total_month_period_idx ON rollup_rep_domain_total_month (period);
CREATE TABLE rollup_rep_domain_total_year (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period)
);
CREATE INDEX rollup_rep_domain_total_year_period_idx ON rollup_rep_domain_total_year (period);
CREATE TABLE rollup_rep_org_total_month (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (org_id, period)
);
CREATE INDEX rollup_rep_org_total_month_period_idx ON rollup_rep_org_total_month (period);
CREATE TABLE rollup_rep_org_total_year (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (org_id, period)
);
CREATE INDEX rollup_rep_org_total_year_period_idx ON rollup_rep_org_total_year (period);

INSERT INTO rollup_ip_dekad (period, ip_id, messages, first_day, last_day)
    SELECT (period - (EXTRACT(DAY FROM DATE '1970-01-01' + period)::integer - 1) + LEAST((EXTRACT(DAY FROM DATE '1970-01-01' + period)::integer - 1) / 10, 2) * 10), ip_id, SUM(messages), MIN(period), MAX(period) FROM rollup_src_day GROUP BY (period - (EXTRACT(DAY FROM DATE '1970-01-01' + period)::integer - 1) + LEAST((EXTRACT(DAY FROM DATE '1970-01-01' + period)::integer - 1) / 10, 2) * 10), ip_id;
ANALYZE rollup_ip_dekad;
INSERT INTO rollup_ip_month (period, ip_id, messages, first_day, last_day)
    SELECT period, ip_id, SUM(messages), MIN(first_day), MAX(last_day) FROM rollup_src_month GROUP BY period, ip_id;
ANALYZE rollup_ip_month;
INSERT INTO rollup_ip_quarter (period, ip_id, messages, first_day, last_day)
    SELECT (date_trunc('quarter', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id, SUM(messages), MIN(first_day), MAX(last_day) FROM rollup_src_month GROUP BY (date_trunc('quarter', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id;
ANALYZE rollup_ip_quarter;
INSERT INTO rollup_ip_year (period, ip_id, messages, first_day, last_day)
    SELECT (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id, SUM(messages), MIN(first_day), MAX(last_day) FROM rollup_src_month GROUP BY (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id;
ANALYZE rollup_ip_year;
INSERT INTO rollup_ip_domain_year (domain_id, period, ip_id, messages, first_day, last_day)
    SELECT domain_id, (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id, SUM(messages), MIN(first_day), MAX(last_day) FROM rollup_src_domain_month GROUP BY (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), domain_id, ip_id;
ANALYZE rollup_ip_domain_year;
INSERT INTO rollup_ip_org_year (ip_id, period, org_id, messages, first_day, last_day)
    SELECT ip_id, (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), org_id, SUM(messages), MIN(first_day), MAX(last_day) FROM rollup_src_org_month GROUP BY (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), ip_id, org_id;
ANALYZE rollup_ip_org_year;
INSERT INTO rollup_rep_domain_total_month (domain_id, period, reports)
    SELECT domain_id, period, SUM(reports) FROM rollup_rep_domain_month GROUP BY period, domain_id;
ANALYZE rollup_rep_domain_total_month;
INSERT INTO rollup_rep_domain_total_year (domain_id, period, reports)
    SELECT domain_id, (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), SUM(reports) FROM rollup_rep_domain_month GROUP BY (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), domain_id;
ANALYZE rollup_rep_domain_total_year;
INSERT INTO rollup_rep_org_total_month (org_id, period, reports)
    SELECT org_id, period, SUM(reports) FROM rollup_rep_org_month GROUP BY period, org_id;
ANALYZE rollup_rep_org_total_month;
INSERT INTO rollup_rep_org_total_year (org_id, period, reports)
    SELECT org_id, (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), SUM(reports) FROM rollup_rep_org_month GROUP BY (date_trunc('year', DATE '1970-01-01' + period)::date - DATE '1970-01-01'), org_id;
ANALYZE rollup_rep_org_total_year;

-- +goose Down
DROP TABLE rollup_rep_org_total_year;
DROP TABLE rollup_rep_org_total_month;
DROP TABLE rollup_rep_domain_total_year;
DROP TABLE rollup_rep_domain_total_month;
DROP TABLE rollup_ip_org_year;
DROP TABLE rollup_ip_domain_year;
DROP TABLE rollup_ip_year;
DROP TABLE rollup_ip_quarter;
DROP TABLE rollup_ip_month;
DROP TABLE rollup_ip_dekad;
