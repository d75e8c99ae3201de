-- MLflow 3 logged models: a run's model, whose files are uploaded under it
-- (to the artifact store) before a version is registered from it.
CREATE TABLE logged_models (
    id            TEXT    PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    source_run_id TEXT    REFERENCES runs(id) ON DELETE SET NULL,
    model_type    TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL DEFAULT 'PENDING',
    params        TEXT    NOT NULL DEFAULT '{}',
    tags          TEXT    NOT NULL DEFAULT '{}',
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE INDEX logged_models_run ON logged_models(source_run_id);
