-- Issue 20: a result lands only on the payment that was checked.
--
-- 1. Ids are never handed out twice. Without AUTOINCREMENT SQLite gives a
--    new row the id of a deleted last row, and a check in flight for the
--    deleted row (up to a lease) could then land on the new one. SQLite
--    cannot add AUTOINCREMENT to a table, so the table is rebuilt with
--    every row, column, index and trigger as they were. Its counter starts
--    above every id the table or its events have ever named.
-- 2. Amounts too large for a KHQR (at least 1e13, more than its 13
--    characters) are refused at INSERT and UPDATE, the bound PostgreSQL's
--    CHECK sets. A trigger, not the CHECK: rows an older release accepted
--    stay (the daemon parks them naming the amount).
--
-- Triggers of your own on payments are dropped with the old table: create
-- them again after this migration (`bakong-poller migrate`).

CREATE TABLE payments_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    last_checked_at TEXT,
    lane            INTEGER NOT NULL DEFAULT 0    -- 0 fresh, 1 older
);

INSERT INTO payments_rebuilt (id, md5, amount, currency, expires_at, created_at, status,
        bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
        description, paid_at, confirmed_at, next_check_at, lease_id, checks, errors,
        last_answer, last_error, last_checked_at, lane)
    SELECT id, md5, amount, currency, expires_at, created_at, status,
        bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
        description, paid_at, confirmed_at, next_check_at, lease_id, checks, errors,
        last_answer, last_error, last_checked_at, lane
    FROM payments;

DROP TABLE payments;
ALTER TABLE payments_rebuilt RENAME TO payments;

-- The counter: above every id the table or an event has named (a deleted
-- last row's id is known only through its events).
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'payments', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payments');
UPDATE sqlite_sequence
    SET seq = max(seq,
                  coalesce((SELECT max(id) FROM payments), 0),
                  coalesce((SELECT max(payment_id) FROM payment_events), 0))
    WHERE name = 'payments';

CREATE INDEX payments_due ON payments (lane, next_check_at) WHERE status = 'pending';
CREATE INDEX payments_status ON payments (status);

CREATE TRIGGER payments_usd_cents_on_insert
BEFORE INSERT ON payments
WHEN NEW.currency = 'USD'
 AND typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND instr(NEW.amount, '.') > 0
 AND length(rtrim(substr(NEW.amount, instr(NEW.amount, '.') + 1), '0')) > 2
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: a USD amount takes at most 2 decimals (a KHQR cannot carry more)');
END;

CREATE TRIGGER payments_khr_whole_on_insert
BEFORE INSERT ON payments
WHEN NEW.currency = 'KHR'
 AND typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND instr(NEW.amount, '.') > 0
 AND length(rtrim(substr(NEW.amount, instr(NEW.amount, '.') + 1), '0')) > 0
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: a KHR amount takes no decimals (a KHQR cannot carry them)');
END;

CREATE TRIGGER payments_usd_cents_on_update
BEFORE UPDATE OF amount, currency ON payments
WHEN NEW.currency = 'USD'
 AND typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND instr(NEW.amount, '.') > 0
 AND length(rtrim(substr(NEW.amount, instr(NEW.amount, '.') + 1), '0')) > 2
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: a USD amount takes at most 2 decimals (a KHQR cannot carry more)');
END;

CREATE TRIGGER payments_khr_whole_on_update
BEFORE UPDATE OF amount, currency ON payments
WHEN NEW.currency = 'KHR'
 AND typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND instr(NEW.amount, '.') > 0
 AND length(rtrim(substr(NEW.amount, instr(NEW.amount, '.') + 1), '0')) > 0
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: a KHR amount takes no decimals (a KHQR cannot carry them)');
END;

-- What a KHQR can carry in length: below 1e13, as PostgreSQL's CHECK.
CREATE TRIGGER payments_amount_bound_on_insert
BEFORE INSERT ON payments
WHEN typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND CAST(NEW.amount AS REAL) >= 1e13
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: must be below 10000000000000 (a KHQR amount has at most 13 characters)');
END;

CREATE TRIGGER payments_amount_bound_on_update
BEFORE UPDATE OF amount ON payments
WHEN typeof(NEW.amount) = 'text' AND NEW.amount NOT GLOB '*[^0-9.]*'
 AND CAST(NEW.amount AS REAL) >= 1e13
BEGIN
    SELECT RAISE(ABORT, 'payments.amount: must be below 10000000000000 (a KHQR amount has at most 13 characters)');
END;

-- The daemon's secret for its events (issue 20): each event it writes
-- carries a MAC over its id, type, md5 and payload keyed by this, and the
-- sender delivers only events whose MAC verifies. Made by the daemon on
-- its first start. Bookkeeping, not public contract.
CREATE TABLE daemon_secret (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    event_key   BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
ALTER TABLE payment_events ADD COLUMN mac TEXT;
