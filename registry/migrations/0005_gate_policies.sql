-- modelwatch registry schema, version 5: one promotion gate policy per model.
-- rego: the policy's Rego source as uploaded (compiled and checked by the
-- daemon before it is stored); sha256: hex sha256 of that text, the
-- identity a gate decision and a promotion's audit entry refer to.
CREATE TABLE gate_policies (
    model_id   INTEGER PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    rego       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
