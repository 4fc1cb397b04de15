-- 0002_expiry: per-message records and statuses expire, so the store does
-- not grow with every message forever.
--
-- kv.expires: unix milliseconds; 9223372036854775807 means never (the
-- records of a contact: opt-outs, threads, the contact-ID map). Records
-- kept per message (idempotency answers, send memos) get a real expiry.
-- status.updated_at: when the status last advanced; rows of messages with
-- no news for a long time are swept. Rows from before this migration count
-- as updated now.

ALTER TABLE kv ADD COLUMN expires INTEGER NOT NULL DEFAULT 9223372036854775807;
CREATE INDEX kv_expires ON kv (expires) WHERE expires < 9223372036854775807;

ALTER TABLE status ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE status SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
CREATE INDEX status_updated ON status (updated_at);
