-- modelwatch registry schema, version 1.
-- Timestamps are RFC 3339 UTC text with microseconds ("2026-11-27T04:12:22.123456Z"),
-- so they sort lexicographically and read the same in sqlite3 and in the audit chain.
-- Tags, lineage, evidence and health are JSON objects stored as text.

CREATE TABLE models (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    description   TEXT    NOT NULL DEFAULT '',
    owner         TEXT    NOT NULL DEFAULT '',
    tags          TEXT    NOT NULL DEFAULT '{}',
    -- The next version number to hand out: incremented in the same
    -- transaction that inserts the version, so numbers are unique, start at 1,
    -- and are never reused even after a version is deleted.
    next_version  INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE versions (
    id              INTEGER PRIMARY KEY,
    model_id        INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    source_uri      TEXT,
    artifact_digest TEXT,
    run_id          TEXT,
    lineage         TEXT    NOT NULL DEFAULT '{}',
    tags            TEXT    NOT NULL DEFAULT '{}',
    status          TEXT    NOT NULL DEFAULT 'ready',
    health          TEXT,
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (model_id, version)
);
-- Run-id search within a model must not scan every version of the model.
CREATE INDEX versions_run_id ON versions(model_id, run_id, version);

CREATE TABLE aliases (
    model_id    INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (model_id, name)
);

-- Every alias move, kept for good: rollback replays this history.
CREATE TABLE alias_moves (
    id            INTEGER PRIMARY KEY,
    model_id      INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias         TEXT    NOT NULL,
    from_version  INTEGER,
    to_version    INTEGER,
    kind          TEXT    NOT NULL, -- set | rollback | delete
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    at            TEXT    NOT NULL
);
CREATE INDEX alias_moves_alias ON alias_moves(model_id, alias, id);

CREATE TABLE recommendations (
    id               INTEGER PRIMARY KEY,
    model_id         INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version          INTEGER NOT NULL,
    kind             TEXT    NOT NULL, -- retrain | rollback | promote
    severity         TEXT    NOT NULL, -- info | warning | critical
    reason           TEXT    NOT NULL,
    evidence         TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL, -- open | applied | dismissed | superseded
    raised_by        TEXT    NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_at  TEXT,
    resolved_by      TEXT,
    resolved_at      TEXT,
    resolution_note  TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
-- One open recommendation per kind per version.
CREATE UNIQUE INDEX recommendations_one_open
    ON recommendations(model_id, version, kind) WHERE status = 'open';

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical entry).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    before     TEXT,
    after      TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

-- API tokens: only the sha256 of the secret is stored.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
