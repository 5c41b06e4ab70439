-- Notifications: what the outbox and link tokens need beyond the base schema.

-- A stable Message-ID per message, so a copy sent again after a crash is recognisable;
-- which account and product a message is about (a user's timeline); when it last changed.
ALTER TABLE email_outbox ADD COLUMN message_id TEXT;
ALTER TABLE email_outbox ADD COLUMN account_id TEXT;
ALTER TABLE email_outbox ADD COLUMN product TEXT;
ALTER TABLE email_outbox ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
-- Undelivered messages for admins, and per-account history.
CREATE INDEX email_outbox_by_status ON email_outbox (status, updated_at);
CREATE INDEX email_outbox_by_account ON email_outbox (account_id, product);
CREATE INDEX link_tokens_by_account ON link_tokens (account_id, product);
