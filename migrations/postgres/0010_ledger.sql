-- Apply runs show their progress (items done of the total, failures) while they run.
ALTER TABLE sweep_runs ADD COLUMN items_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sweep_runs ADD COLUMN items_done BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sweep_runs ADD COLUMN items_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sweep_runs ADD COLUMN site TEXT;
-- The sweep asks whether a seat's owner asked for access since the plan was made.
CREATE INDEX restore_requests_by_account ON restore_requests (account_id, created_at);
CREATE INDEX keeps_by_created ON keeps (account_id, product, site, created_at);
-- One journal lookup per membership (removal intents and their answers).
CREATE INDEX journal_by_membership ON journal (account_id, product, site, group_id, id);
