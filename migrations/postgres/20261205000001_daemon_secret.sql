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

-- No other role may read the key, not even for the moment between this
-- migration and the daemon's revokes: default privileges another guide
-- set up would grant it at CREATE, so they are taken back here, in the
-- same transaction.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT DISTINCT a.grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'daemon_secret'::regclass AND a.grantee <> c.relowner
    LOOP
        IF g.grantee = 0 THEN
            EXECUTE 'REVOKE ALL ON daemon_secret FROM PUBLIC';
        ELSE
            EXECUTE format('REVOKE ALL ON daemon_secret FROM %I',
                           (SELECT rolname FROM pg_roles WHERE oid = g.grantee));
        END IF;
    END LOOP;
END $$;
