-- modelwatch registry schema, version 7: Alertmanager notifications received
-- on POST /api/v1/alerts/alertmanager, one row per alert state, so a
-- notification Alertmanager repeats (it re-sends until the group changes,
-- and retries on errors) is recognised and not acted on twice.
-- (fingerprint, starts_at, status) identifies an alert state: the same
-- alert firing again later has a new starts_at; its resolution is a new
-- status. outcome: rolled_back | recommended | refused | ignored | resolved.
CREATE TABLE alert_notifications (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    starts_at    TEXT NOT NULL,
    status       TEXT NOT NULL,
    alert_name   TEXT NOT NULL,
    model        TEXT,
    version      INTEGER,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    -- The alert as received: labels, annotations, generator URL, ends_at.
    alert        TEXT NOT NULL,
    received_by  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX alert_notifications_received ON alert_notifications (received_at);
