-- The payments table: merchants INSERT md5, amount, currency (and optionally
-- expires_at); the daemon writes the rest. Bad rows are refused here, at
-- INSERT time, so nothing wrong ever enters the queue.
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY,
    md5             TEXT NOT NULL UNIQUE
                    CHECK (typeof(md5) = 'text' AND length(md5) = 32
                           AND md5 NOT GLOB '*[^0-9a-f]*'),
    -- TEXT affinity turns a number inserted by a client into its text.
    amount          TEXT NOT NULL
                    CHECK (typeof(amount) = 'text' AND length(amount) <= 30
                           AND amount GLOB '[0-9]*' AND amount NOT GLOB '*[^0-9.]*'
                           AND amount NOT GLOB '*.*.*' AND amount NOT GLOB '*.'
                           AND CAST(amount AS REAL) > 0),
    currency        TEXT NOT NULL CHECK (currency IN ('USD', 'KHR')),
    expires_at      TEXT CHECK (expires_at IS NULL OR unixepoch(expires_at) IS NOT NULL),
    created_at      TEXT NOT NULL DEFAULT (datetime('now'))
                    CHECK (unixepoch(created_at) IS NOT NULL),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'mismatch', 'failed', 'expired')),
    bakong_hash     TEXT,
    from_account_id TEXT,
    to_account_id   TEXT,
    paid_amount     TEXT,
    paid_currency   TEXT,
    description     TEXT,
    paid_at         TEXT,
    confirmed_at    TEXT,
    -- The daemon's bookkeeping (not part of the public contract).
    next_check_at   INTEGER NOT NULL DEFAULT 0,   -- unix ms; a claim pushes it by the lease
    lease_id        INTEGER,                      -- the claim that holds the row
    checks          INTEGER NOT NULL DEFAULT 0,   -- answers received
    errors          INTEGER NOT NULL DEFAULT 0,   -- consecutive transient errors
    last_answer     TEXT,                         -- 'not_found' | 'failed' | error kind
    last_error      TEXT,
    last_checked_at TEXT
);

-- The claim reads only due pending rows: its cost follows their number,
-- not the table's size.
CREATE INDEX payments_due ON payments (next_check_at) WHERE status = 'pending';
CREATE INDEX payments_status ON payments (status);
