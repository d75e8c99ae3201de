-- modelwatch registry schema, version 6: what MLflow clients need beyond
-- models, versions and aliases.
-- stage: MLflow's model-version stage ('None' | 'Staging' | 'Production' |
-- 'Archived'), independent of aliases and of status.
ALTER TABLE versions ADD COLUMN stage TEXT NOT NULL DEFAULT 'None';
-- get-latest-versions and archive_existing_versions look versions up by stage.
CREATE INDEX versions_stage ON versions(model_id, stage, version);
-- Source-path filters in model-version searches.
CREATE INDEX versions_source ON versions(source_uri);
-- Run-id filters across models (search_model_versions without a name).
CREATE INDEX versions_run ON versions(run_id);

-- The tracking store: experiments and runs, so a run id can be a version's
-- lineage. Experiment ids are integers shown as text; 0 is "Default".
CREATE TABLE experiments (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL DEFAULT '',
    lifecycle_stage   TEXT NOT NULL DEFAULT 'active', -- active | deleted
    tags              TEXT NOT NULL DEFAULT '{}',
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
INSERT INTO experiments (id, name, created_by, created_at, updated_at)
VALUES (0, 'Default', 'modelwatch',
        strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- Runs: id is 32 lowercase hex characters (MLflow's uuid4().hex shape).
-- start_time/end_time are epoch milliseconds as the client sends them.
-- params and tags are JSON objects; params are write-once per key.
CREATE TABLE runs (
    id              TEXT    PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'RUNNING',
    start_time      INTEGER,
    end_time        INTEGER,
    lifecycle_stage TEXT    NOT NULL DEFAULT 'active',
    params          TEXT    NOT NULL DEFAULT '{}',
    tags            TEXT    NOT NULL DEFAULT '{}',
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX runs_experiment ON runs(experiment_id, id);

-- Every logged metric point (the history); a run's "latest" value of a key
-- is the point with the highest (step, timestamp, id).
CREATE TABLE run_metrics (
    id        INTEGER PRIMARY KEY,
    run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX run_metrics_key ON run_metrics(run_id, key, step, timestamp, id);
