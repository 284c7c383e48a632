-- +goose Up
-- ML jobs (issue 15, pkg/ml): Isolation Forest models of the sending sources and the
-- predictions of their scoring runs. Times are Unix seconds (BIGINT), as in alerting.

-- One row per training: its state, window, parameters and, once ready, the forest itself
-- (pkg/isoforest's JSON form). One model at most is deployed (the partial unique index).
CREATE TABLE ml_models (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    version       INTEGER NOT NULL UNIQUE,
    status        TEXT    NOT NULL,                -- training, ready, failed
    deployed      BOOLEAN NOT NULL DEFAULT 0,
    window_days   INTEGER NOT NULL,
    window_start  BIGINT  NOT NULL,                -- UTC day numbers, inclusive
    window_end    BIGINT  NOT NULL,
    samples       INTEGER NOT NULL DEFAULT 0,
    params        TEXT    NOT NULL DEFAULT '{}',   -- JSON: trees, subsample, contamination, seed, threshold, features
    feature_stats TEXT    NOT NULL DEFAULT '[]',   -- JSON: per feature min, max, mean, stddev
    trained_by    TEXT    NOT NULL,
    error         TEXT    NOT NULL DEFAULT '',
    forest        TEXT,
    started_at    BIGINT  NOT NULL,
    trained_at    BIGINT,
    duration_ms   BIGINT  NOT NULL DEFAULT 0,
    deployed_at   BIGINT,
    deployed_by   TEXT
);
CREATE UNIQUE INDEX ml_models_one_deployed_idx ON ml_models (deployed) WHERE deployed;

-- One row per source scored by a run: the scores, the verdict and the features scored, and
-- the domain that source sent most for (what an anomaly alert is raised for).
CREATE TABLE ml_predictions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        BIGINT           NOT NULL,       -- the run's detected_at in ms: one run, one value
    model_id      BIGINT           NOT NULL REFERENCES ml_models (id) ON DELETE CASCADE,
    detected_at   BIGINT           NOT NULL,
    ip            TEXT             NOT NULL,
    domain        TEXT             NOT NULL,
    score         REAL NOT NULL,       -- threshold − s: lower is more anomalous
    anomaly_score REAL NOT NULL,       -- s(x, n) in [0, 1]
    is_anomaly    BOOLEAN          NOT NULL,
    features      TEXT             NOT NULL
);
CREATE INDEX ml_predictions_run_idx ON ml_predictions (run_id, is_anomaly, score);
CREATE INDEX ml_predictions_detected_idx ON ml_predictions (detected_at);
CREATE INDEX ml_predictions_model_idx ON ml_predictions (model_id, run_id);
CREATE INDEX ml_predictions_ip_idx ON ml_predictions (ip, detected_at);

-- +goose Down
DROP TABLE ml_predictions;
DROP TABLE ml_models;
