-- modelwatch registry schema, version 4: outbound webhooks.
-- (Version 3 is the monitoring policies' migration.)
--
-- Subscriptions are registry records (created and deleted through the audit
-- chain); deliveries are operational records (not audited, pruned after 7
-- days once delivered or failed). Registry events reach the deliveries
-- through a transactional outbox: a dispatcher reads the audit log after
-- `webhook_cursor.last_seq` and, in one transaction, inserts the deliveries
-- and advances the cursor.

CREATE TABLE webhook_subscriptions (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    url         TEXT    NOT NULL,
    -- JSON array of event types, or ["*"] for every event.
    events      TEXT    NOT NULL,
    -- Only events about this model (NULL: every model).
    model       TEXT,
    -- Used to sign payloads, so it is kept as given (unlike token secrets);
    -- never part of an audit entry or a listing.
    secret      TEXT    NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    -- Audit seq of the subscription's `webhook.create` entry: only audit
    -- entries after it are delivered to it, however far the cursor lags.
    from_seq    INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TABLE webhook_deliveries (
    id                INTEGER PRIMARY KEY,
    subscription_id   INTEGER NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id          TEXT    NOT NULL,
    event_type        TEXT    NOT NULL,
    -- The exact bytes sent (and signed) on every attempt.
    payload           TEXT    NOT NULL,
    status            TEXT    NOT NULL, -- pending | delivered | failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due.
    next_attempt_at   TEXT,
    -- Set while an attempt is in flight: not handed out again before then
    -- (cleared when the attempt is recorded, and at daemon start).
    leased_until      TEXT,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        TEXT    NOT NULL,
    delivered_at      TEXT,
    -- When the delivery reached `delivered` or `failed` (for pruning).
    finished_at       TEXT,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries(subscription_id, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries(finished_at) WHERE status <> 'pending';

-- The dispatcher's position in the audit log. Starts at the current head, so
-- upgrading does not replay history.
CREATE TABLE webhook_cursor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_log;
