-- The gate's state shared by every daemon on the database (issues 10 and
-- 13): the "not before" instant of a 429, the adaptive rate learned, the
-- daily quota's pause and today's request spend. One row. One daemon's 429
-- holds all of them back; a restart honours what the process before it
-- learned. The daemon's bookkeeping, not public contract.
CREATE TABLE gate_state (
    id                  integer PRIMARY KEY CHECK (id = 1),
    not_before_ms       bigint,             -- unix ms: no request before it
    not_before_set_ms   bigint,             -- unix ms the window was recorded
    rate                double precision,   -- learned requests/s, all daemons
    rate_epoch          bigint NOT NULL DEFAULT 0, -- bumped on each cut
    quota_since_ms      bigint,             -- unix ms; NULL: no pause
    quota_next_probe_ms bigint,             -- unix ms of the next probe
    spend_day           text,               -- UTC day 'YYYY-MM-DD' of spend
    spend               bigint NOT NULL DEFAULT 0  -- requests sent that day
);
INSERT INTO gate_state (id) VALUES (1);

-- Live daemons, each heartbeating; each takes 1/n of the ceiling.
CREATE TABLE gate_members (
    instance  text PRIMARY KEY,             -- random per process
    host      text NOT NULL,
    pid       bigint NOT NULL,
    seen_ms   bigint NOT NULL               -- unix ms of the last heartbeat
);
