-- Issue 25: the checkout page's "Open in bank app": the Bakong deeplink of
-- the payment's QR (generate_deeplink_by_qr), fetched once after the API
-- made the payment, outside any transaction; '' when Bakong gave none.
ALTER TABLE payments ADD COLUMN deeplink TEXT;
