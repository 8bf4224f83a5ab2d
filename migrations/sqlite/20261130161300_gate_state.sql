-- The gate's state that outlives the process (issue 13): the daily
-- quota's pause and today's request spend. One row; a restart (or another
-- daemon on the same database) reads it, so a pause is honoured and the
-- day's spend is not reset. The daemon's bookkeeping, not public contract.
CREATE TABLE gate_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    quota_since_ms      INTEGER,            -- unix ms; NULL: no pause
    quota_next_probe_ms INTEGER,            -- unix ms of the next probe
    spend_day           TEXT,               -- UTC day 'YYYY-MM-DD' of spend
    spend               INTEGER NOT NULL DEFAULT 0  -- requests sent that day
);
INSERT INTO gate_state (id) VALUES (1);
