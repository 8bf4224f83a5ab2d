-- The access token shared by every daemon on the database (issue 10): one
-- row, written under a PostgreSQL advisory lock by the daemon that renews,
-- so a renewal is made once for all daemons and every daemon uses the token
-- it produced. The daemon's bookkeeping, not public contract: do not read
-- or write it from an application (`bakong-poller token show` reads it).
CREATE TABLE api_token (
    id          integer PRIMARY KEY CHECK (id = 1),
    token       text NOT NULL,
    version     bigint NOT NULL,  -- bumped by every write
    renewed_ms  bigint NOT NULL,  -- unix ms of the write
    renewed_by  text NOT NULL     -- host and pid of the writer, for the log
);
