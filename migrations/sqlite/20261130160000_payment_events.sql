-- Notifications: one event per final status, written in the same
-- transaction as the status (an outbox), so a crash can never separate
-- them. Public columns: id, type, md5, payload, created_at. The table is a
-- feed the merchant may read whether or not a receiver is configured.
CREATE TABLE payment_events (
    id          TEXT PRIMARY KEY,                -- 'msg_' + ULID; the webhook-id
    type        TEXT NOT NULL,                   -- 'payment.paid', ...
    md5         TEXT NOT NULL,
    payload     TEXT NOT NULL,                   -- the JSON body sent, byte for byte
    created_at  TEXT NOT NULL,                   -- UTC, 'YYYY-MM-DD HH:MM:SS.SSS'
    -- The daemon's bookkeeping (not part of the public contract).
    payment_id  INTEGER,
    created_ms  INTEGER NOT NULL                 -- unix ms, for latency figures
);
CREATE INDEX payment_events_md5 ON payment_events (md5);

-- The receivers configured on the last daemon start ('webhook', 'hook'):
-- an event gets a delivery row for each active one, in the event's
-- transaction, so a receiver gets the events recorded while it is
-- configured.
CREATE TABLE event_receivers (
    name        TEXT PRIMARY KEY CHECK (name IN ('webhook', 'hook')),
    active      INTEGER NOT NULL DEFAULT 1,
    updated_at  TEXT NOT NULL
);

-- One delivery per event and receiver, tracked apart.
CREATE TABLE event_deliveries (
    event_id        TEXT NOT NULL REFERENCES payment_events (id),
    receiver        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,  -- unix ms; a claim pushes it by the lease
    lease_id        INTEGER,
    last_error      TEXT,
    delivered_at    TEXT,
    delivered_ms    INTEGER,
    PRIMARY KEY (event_id, receiver)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX event_deliveries_status ON event_deliveries (status);

-- Every attempt, with its answer (`events show`).
CREATE TABLE event_attempts (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    latency_ms  INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT,
    answer      TEXT                             -- the first bytes of the answer
);
CREATE INDEX event_attempts_event ON event_attempts (event_id);
