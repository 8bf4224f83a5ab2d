-- Issue 20: the daemon's secret for its events. Each event the daemon
-- writes carries a MAC over its id, type, md5 and payload keyed by this,
-- and the sender delivers only events whose MAC verifies: a row put in
-- payment_events by anyone else is never signed and sent. The key is made
-- by the first daemon that needs it. Bookkeeping, not public contract:
-- `migrate` revokes every other role's privileges on this table (and on
-- the other bookkeeping tables) each time it runs.
CREATE TABLE daemon_secret (
    id          integer PRIMARY KEY CHECK (id = 1),
    event_key   bytea NOT NULL,
    created_at  timestamptz NOT NULL
);
ALTER TABLE payment_events ADD COLUMN mac text;
