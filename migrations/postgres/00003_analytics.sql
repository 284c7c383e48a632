-- +goose Up
-- Analytics rollups (pkg/rollup). Generated from rollup.Families by
-- `go test ./pkg/rollup -run TestMigrationMatchesFamilies -update`; edit the families, not this file.

-- Small ids for the policy domains and reporters rollup rows carry; never reused or changed.
CREATE TABLE rollup_domains (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE rollup_orgs (
    id SERIAL PRIMARY KEY,
    org_key TEXT NOT NULL UNIQUE,
    org_name TEXT NOT NULL
);
-- Source addresses in the 16-byte form of records.ip (IPv4 mapped): exact and CIDR filters are
-- byte ranges on ip, turned into ids for the rollups.
CREATE TABLE rollup_ips (
    id SERIAL PRIMARY KEY,
    ip BYTEA NOT NULL UNIQUE
);

-- One row per report whose contribution is in the rollups, written in the same transaction as
-- the rollup rows: applying a report twice finds it here and adds nothing. Reports stored
-- before this migration have no row; the periodic catch-up applies them.
CREATE TABLE rollup_applied (
    report_id BIGINT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL
);

-- period is a UTC day number (days since 1970-01-01); in month tables, the first day of the month.
CREATE TABLE rollup_all_day (
    period INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (period, outcome)
);
CREATE TABLE rollup_all_month (
    period INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (period, outcome)
);
CREATE TABLE rollup_org_day (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, outcome)
);
CREATE INDEX rollup_org_day_period_idx ON rollup_org_day (period);
CREATE TABLE rollup_org_month (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, outcome)
);
CREATE INDEX rollup_org_month_period_idx ON rollup_org_month (period);
CREATE TABLE rollup_domain_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, policy, matched, outcome)
);
CREATE INDEX rollup_domain_day_period_idx ON rollup_domain_day (period);
CREATE TABLE rollup_domain_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, policy, matched, outcome)
);
CREATE INDEX rollup_domain_month_period_idx ON rollup_domain_month (period);
CREATE TABLE rollup_full_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, policy, matched, outcome)
);
CREATE INDEX rollup_full_day_org_id_period_idx ON rollup_full_day (org_id, period);
CREATE TABLE rollup_full_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, policy, matched, outcome)
);
CREATE INDEX rollup_full_month_org_id_period_idx ON rollup_full_month (org_id, period);
CREATE TABLE rollup_src_day (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (period, ip_id, outcome)
);
CREATE INDEX rollup_src_day_ip_id_period_idx ON rollup_src_day (ip_id, period);
CREATE TABLE rollup_src_month (
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (period, ip_id, outcome)
);
CREATE INDEX rollup_src_month_ip_id_period_idx ON rollup_src_month (ip_id, period);
CREATE TABLE rollup_src_org_day (
    ip_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (ip_id, period, org_id, outcome)
);
CREATE INDEX rollup_src_org_day_org_id_period_idx ON rollup_src_org_day (org_id, period);
CREATE TABLE rollup_src_org_month (
    ip_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (ip_id, period, org_id, outcome)
);
CREATE INDEX rollup_src_org_month_org_id_period_idx ON rollup_src_org_month (org_id, period);
CREATE TABLE rollup_src_domain_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, ip_id, policy, matched, outcome)
);
CREATE INDEX rollup_src_domain_day_ip_id_domain_id_period_idx ON rollup_src_domain_day (ip_id, domain_id, period);
CREATE TABLE rollup_src_domain_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (domain_id, period, ip_id, policy, matched, outcome)
);
CREATE INDEX rollup_src_domain_month_ip_id_domain_id_period_idx ON rollup_src_domain_month (ip_id, domain_id, period);
CREATE TABLE rollup_src_full_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, ip_id, policy, matched, outcome)
);
CREATE INDEX rollup_src_full_day_org_id_period_idx ON rollup_src_full_day (org_id, period);
CREATE INDEX rollup_src_full_day_ip_id_domain_id_period_idx ON rollup_src_full_day (ip_id, domain_id, period);
CREATE TABLE rollup_src_full_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    ip_id INTEGER NOT NULL,
    policy SMALLINT NOT NULL,
    matched SMALLINT NOT NULL,
    outcome SMALLINT NOT NULL,
    messages BIGINT NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, ip_id, policy, matched, outcome)
);
CREATE INDEX rollup_src_full_month_org_id_period_idx ON rollup_src_full_month (org_id, period);
CREATE INDEX rollup_src_full_month_ip_id_domain_id_period_idx ON rollup_src_full_month (ip_id, domain_id, period);
CREATE TABLE rollup_rep_domain_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, mask)
);
CREATE INDEX rollup_rep_domain_day_period_idx ON rollup_rep_domain_day (period);
CREATE TABLE rollup_rep_domain_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, mask)
);
CREATE INDEX rollup_rep_domain_month_period_idx ON rollup_rep_domain_month (period);
CREATE TABLE rollup_rep_org_day (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, mask)
);
CREATE INDEX rollup_rep_org_day_period_idx ON rollup_rep_org_day (period);
CREATE TABLE rollup_rep_org_month (
    org_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, mask)
);
CREATE INDEX rollup_rep_org_month_period_idx ON rollup_rep_org_month (period);
CREATE TABLE rollup_rep_full_day (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, mask)
);
CREATE INDEX rollup_rep_full_day_org_id_period_idx ON rollup_rep_full_day (org_id, period);
CREATE TABLE rollup_rep_full_month (
    domain_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (domain_id, period, org_id, mask)
);
CREATE INDEX rollup_rep_full_month_org_id_period_idx ON rollup_rep_full_month (org_id, period);
CREATE TABLE rollup_rep_src_day (
    ip_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    domain_id INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (ip_id, period, domain_id, org_id, mask)
);
CREATE TABLE rollup_rep_src_month (
    ip_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    domain_id INTEGER NOT NULL,
    org_id INTEGER NOT NULL,
    mask BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (ip_id, period, domain_id, org_id, mask)
);

-- +goose Down
DROP TABLE rollup_rep_src_month;
DROP TABLE rollup_rep_src_day;
DROP TABLE rollup_rep_full_month;
DROP TABLE rollup_rep_full_day;
DROP TABLE rollup_rep_org_month;
DROP TABLE rollup_rep_org_day;
DROP TABLE rollup_rep_domain_month;
DROP TABLE rollup_rep_domain_day;
DROP TABLE rollup_src_full_month;
DROP TABLE rollup_src_full_day;
DROP TABLE rollup_src_domain_month;
DROP TABLE rollup_src_domain_day;
DROP TABLE rollup_src_org_month;
DROP TABLE rollup_src_org_day;
DROP TABLE rollup_src_month;
DROP TABLE rollup_src_day;
DROP TABLE rollup_full_month;
DROP TABLE rollup_full_day;
DROP TABLE rollup_domain_month;
DROP TABLE rollup_domain_day;
DROP TABLE rollup_org_month;
DROP TABLE rollup_org_day;
DROP TABLE rollup_all_month;
DROP TABLE rollup_all_day;
DROP TABLE rollup_applied;
DROP TABLE rollup_ips;
DROP TABLE rollup_orgs;
DROP TABLE rollup_domains;
