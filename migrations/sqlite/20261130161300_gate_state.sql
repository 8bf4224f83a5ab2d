-- The gate's state that outlives the process (issues 10 and 13): the
-- "not before" instant of a 429, the adaptive rate learned, the daily
-- quota's pause and today's request spend. One row; a restart (or another
-- daemon on the same database) reads it, so a Retry-After or a pause is
-- honoured, the learned rate kept and the day's spend not reset. The
-- daemon's bookkeeping, not public contract.
CREATE TABLE gate_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    not_before_ms       INTEGER,            -- unix ms: no request before it
    not_before_set_ms   INTEGER,            -- unix ms the window was recorded
    rate                REAL,               -- learned requests/s, all daemons
    rate_epoch          INTEGER NOT NULL DEFAULT 0, -- bumped on each cut
    quota_since_ms      INTEGER,            -- unix ms; NULL: no pause
    quota_next_probe_ms INTEGER,            -- unix ms of the next probe
    spend_day           TEXT,               -- UTC day 'YYYY-MM-DD' of spend
    spend               INTEGER NOT NULL DEFAULT 0  -- requests sent that day
);
INSERT INTO gate_state (id) VALUES (1);

-- Live daemons, each heartbeating; each takes 1/n of the ceiling.
CREATE TABLE gate_members (
    instance  TEXT PRIMARY KEY,             -- random per process
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    seen_ms   INTEGER NOT NULL              -- unix ms of the last heartbeat
);
