-- Daemons sharing the registry and the leases of their background duties
-- (operational records, not audited). On SQLite there is one daemon; the
-- tables exist so that both backends run the same code.
CREATE TABLE cluster_members (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);

CREATE TABLE duty_leases (
    duty TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
