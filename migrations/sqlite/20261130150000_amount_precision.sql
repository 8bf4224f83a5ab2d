-- Amounts that no valid KHQR can carry are refused at INSERT (and UPDATE)
-- time: USD takes at most 2 decimals, KHR none. Judged by value, so
-- trailing zeros are fine ('1.500' USD, '4000.00' KHR, the number 4000.0,
-- which the column's TEXT affinity stores as '4000.0').
--
-- Triggers rather than a new CHECK: SQLite cannot alter a CHECK, and a
-- table rebuild would have to drop or fail on rows the old release
-- accepted. With triggers every existing row, index (payments_due on
-- (lane, next_check_at)) and column stays exactly as it was. A pending row
-- that already breaks the rule is kept as is; the daemon parks it with an
-- error naming its amount (it can never be paid as written).
--
-- Only well-formed amounts are judged here; anything else is left to the
-- table's CHECK and its own message.

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
