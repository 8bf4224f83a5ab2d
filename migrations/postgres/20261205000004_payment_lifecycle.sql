-- Issue 23: the whole life of a payment (see the SQLite migration of the
-- same name): statuses `cancelled` and `paid_late`; the shop's columns
-- `order_id`, `metadata` (a JSON object of at most 4 KB, kept as text), `qr` (the KHQR
-- string, whose md5 must be the row's md5: refused at INSERT here) and
-- `public_id` (32 hex, 122 random bits of a v4 UUID, the id in links);
-- bookkeeping `late_check_at` (unix ms of the next late-money check of a
-- final row; NULL: not watched).
ALTER TABLE payments DROP CONSTRAINT payments_status_known;
ALTER TABLE payments ADD CONSTRAINT payments_status_known
    CHECK (status IN ('pending', 'paid', 'mismatch', 'failed', 'expired', 'cancelled', 'paid_late'));

ALTER TABLE payments
    ADD COLUMN order_id text
        CONSTRAINT payments_order_id_text CHECK (length(order_id) BETWEEN 1 AND 255),
    -- text, so the 4 KB are the bytes the shop sent (jsonb's own text adds
    -- spaces); it must read as a JSON object.
    ADD COLUMN metadata text
        CONSTRAINT payments_metadata_json_object_at_most_4kb
        CHECK (octet_length(metadata) <= 4096 AND jsonb_typeof(metadata::jsonb) = 'object'),
    ADD COLUMN qr text
        CONSTRAINT payments_qr_khqr CHECK (length(qr) BETWEEN 20 AND 1024 AND qr LIKE '000201%'),
    ADD COLUMN public_id text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '')
        CONSTRAINT payments_public_id_hex CHECK (public_id ~ '^[0-9a-f]{32}$'),
    ADD COLUMN late_check_at bigint;

ALTER TABLE payments ADD CONSTRAINT payments_qr_md5 CHECK (qr IS NULL OR md5 = md5(qr));
ALTER TABLE payments ADD CONSTRAINT payments_public_id_unique UNIQUE (public_id);

-- Rows that became expired or failed before this release are watched too
-- (the daemon stops watching those past poller.late_watch at once).
UPDATE payments SET late_check_at = 0 WHERE status IN ('expired', 'failed');

CREATE INDEX payments_order_id ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_late ON payments (late_check_at) WHERE late_check_at IS NOT NULL;
CREATE INDEX payments_created ON payments (created_at);
