-- Issue 24: the HTTP API (see the SQLite migration of the same name):
-- keys (a SHA-256 of each secret), idempotency keys of POST /v1/payments,
-- and the payment's redirect_url. Times are unix ms.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scopes      text NOT NULL CHECK (scopes IN ('read', 'read write')),
    key_hash    text NOT NULL,
    created_ms  bigint NOT NULL,
    revoked_ms  bigint
);

CREATE TABLE api_idempotency (
    key_id        text NOT NULL,
    idem_key      text NOT NULL,
    request_hash  text NOT NULL,
    payment_id    bigint NOT NULL,
    created_ms    bigint NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_ms);

ALTER TABLE payments ADD COLUMN redirect_url text
    CONSTRAINT payments_redirect_url_http
    CHECK (length(redirect_url) <= 2048
           AND (redirect_url LIKE 'https://%' OR redirect_url LIKE 'http://%'));
