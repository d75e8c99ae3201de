-- modelwatch registry schema, version 3: one monitoring policy per model.
-- policy: JSON of `MonitoringPolicy` (registry/src/policy.rs), validated
-- before it is stored; the evaluator reads it every cycle.
CREATE TABLE monitoring_policies (
    model_id   INTEGER PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    policy     TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
