-- Priority lanes: lane 0 holds new and fresh payments (a customer may be
-- waiting at the counter), lane 1 older ones. The claim takes due rows of
-- lane 0 first, then lane 1, each in due order straight off this index, so
-- its cost follows the rows it takes, not the number due or the table size.
ALTER TABLE payments ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
DROP INDEX payments_due;
CREATE INDEX payments_due ON payments (lane, next_check_at) WHERE status = 'pending';
