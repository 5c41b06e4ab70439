-- Restore requests keep the verdict and the message shown to the requester; a restore is
-- journaled once per group and request, however often the job runs.
ALTER TABLE restore_requests ADD COLUMN message TEXT;
ALTER TABLE restore_requests ADD COLUMN verdict TEXT;
CREATE UNIQUE INDEX journal_restored_once ON journal (account_id, product, site, group_id, request_id)
    WHERE action = 'restored';
-- When the requester was answered (JSM comment and transition, link page, email).
ALTER TABLE restore_requests ADD COLUMN replied_at INTEGER;
