-- Issue 24: the HTTP API. Keys (only a SHA-256 of each secret is kept;
-- `revoked_ms` set: refused at once by every daemon, which reads this
-- table on each request), the idempotency keys of POST /v1/payments (kept
-- at least 24 h), and the payment's `redirect_url` (where the checkout
-- page sends the customer once paid). Times are unix ms, the same on both
-- dialects. Bookkeeping of the API, not part of the table contract.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scopes      TEXT NOT NULL CHECK (scopes IN ('read', 'read write')),
    key_hash    TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);

CREATE TABLE api_idempotency (
    key_id        TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    payment_id    INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_ms);

ALTER TABLE payments ADD COLUMN redirect_url TEXT
    CONSTRAINT payments_redirect_url_http
    CHECK (redirect_url IS NULL OR (length(redirect_url) <= 2048
           AND (redirect_url LIKE 'https://%' OR redirect_url LIKE 'http://%')));
