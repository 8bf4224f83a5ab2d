-- Issue 23: the whole life of a payment.
--
-- * Statuses `cancelled` (a pending row the shop cancelled) and `paid_late`
--   (the expected money found after `expired`, `failed` or `cancelled`).
-- * Columns for the shop: `order_id` (its reference, not unique: retries of
--   one order are normal), `metadata` (a JSON object of at most 4 KB), `qr`
--   (the KHQR string), `public_id` (32 hex, 128 random bits, made by the
--   table for every row: the id in links; the integer id stays for SQL).
-- * Bookkeeping: `late_check_at` (unix ms of the next late-money check of a
--   final row; NULL: not watched).
--
-- SQLite cannot alter a CHECK, so the table is rebuilt as in
-- 20261205000001: every row, column, index and trigger kept (the daemon
-- makes the application's own triggers on payments again). SQLite has no
-- md5(): that `md5` is the md5 of `qr` is checked by `add`/`new` before
-- the INSERT and by the daemon when it claims the row (a row whose qr
-- disagrees is parked with an error naming both); PostgreSQL's table
-- refuses it at INSERT.

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
                    CONSTRAINT payments_status_known
                    CHECK (status IN ('pending', 'paid', 'mismatch', 'failed', 'expired',
                                      'cancelled', 'paid_late')),
    bakong_hash     TEXT,
    from_account_id TEXT,
    to_account_id   TEXT,
    paid_amount     TEXT,
    paid_currency   TEXT,
    description     TEXT,
    paid_at         TEXT,
    confirmed_at    TEXT,
    order_id        TEXT
                    CONSTRAINT payments_order_id_text
                    CHECK (order_id IS NULL OR (typeof(order_id) = 'text'
                           AND length(order_id) BETWEEN 1 AND 255)),
    metadata        TEXT
                    CONSTRAINT payments_metadata_json_object_at_most_4kb
                    CHECK (metadata IS NULL OR (typeof(metadata) = 'text'
                           AND length(CAST(metadata AS BLOB)) <= 4096
                           AND CASE WHEN json_valid(metadata)
                                    THEN json_type(metadata) = 'object' ELSE 0 END)),
    qr              TEXT
                    CONSTRAINT payments_qr_khqr
                    CHECK (qr IS NULL OR (typeof(qr) = 'text' AND length(qr) BETWEEN 20 AND 1024
                           AND qr GLOB '000201*')),
    public_id       TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(16))))
                    CONSTRAINT payments_public_id_hex
                    CHECK (typeof(public_id) = 'text' AND length(public_id) = 32
                           AND public_id NOT GLOB '*[^0-9a-f]*'),
    -- The daemon's bookkeeping (not part of the public contract).
    next_check_at   INTEGER NOT NULL DEFAULT 0,   -- unix ms; a claim pushes it by the lease
    lease_id        INTEGER,                      -- the claim that holds the row
    checks          INTEGER NOT NULL DEFAULT 0,   -- answers received
    errors          INTEGER NOT NULL DEFAULT 0,   -- consecutive transient errors
    last_answer     TEXT,                         -- 'not_found' | 'failed' | error kind
    last_error      TEXT,
    last_checked_at TEXT,
    lane            INTEGER NOT NULL DEFAULT 0,   -- 0 fresh, 1 older
    late_check_at   INTEGER                       -- unix ms; NULL: not watched for late money
);

-- Rows that became expired or failed before this release are watched too
-- (the daemon stops watching those past poller.late_watch at once).
INSERT INTO payments_rebuilt (id, md5, amount, currency, expires_at, created_at, status,
        bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
        description, paid_at, confirmed_at, next_check_at, lease_id, checks, errors,
        last_answer, last_error, last_checked_at, lane, late_check_at)
    SELECT id, md5, amount, currency, expires_at, created_at, status,
        bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
        description, paid_at, confirmed_at, next_check_at, lease_id, checks, errors,
        last_answer, last_error, last_checked_at, lane,
        CASE WHEN status IN ('expired', 'failed') THEN 0 END
    FROM payments;

-- The id counter goes with the rows: dropping the old table drops its
-- sqlite_sequence entry, so the new one starts from the old counter (ids
-- are never handed out twice).
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'payments_rebuilt', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payments_rebuilt');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'payments'), 0))
    WHERE name = 'payments_rebuilt';

DROP TABLE payments;
ALTER TABLE payments_rebuilt RENAME TO payments;

UPDATE sqlite_sequence
    SET seq = max(seq,
                  coalesce((SELECT max(id) FROM payments), 0),
                  coalesce((SELECT max(payment_id) FROM payment_events), 0))
    WHERE name = 'payments';

CREATE INDEX payments_due ON payments (lane, next_check_at) WHERE status = 'pending';
CREATE INDEX payments_status ON payments (status);
CREATE INDEX payments_order_id ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_late ON payments (late_check_at) WHERE late_check_at IS NOT NULL;
CREATE INDEX payments_created ON payments (created_at);

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
