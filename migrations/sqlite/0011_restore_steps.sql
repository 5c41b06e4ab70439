-- A restore request is processed by one job at a time: the job the request names. Approving
-- or denying names a new job; a stale job finds another named and does nothing.
ALTER TABLE restore_requests ADD COLUMN job_id BIGINT;
-- When the first read-back after adding the groups did not show them yet (the platform is
-- eventually consistent): verification waits inside a window from here.
ALTER TABLE restore_requests ADD COLUMN verify_since BIGINT;
-- A request that asked, at the same time as another, for the same account and product is
-- answered with that request's outcome.
ALTER TABLE restore_requests ADD COLUMN coalesced_into TEXT;
CREATE INDEX restore_requests_by_subject ON restore_requests (account_id, product, created_at);

-- The reply to a request, as steps (JSM comment, JSM transition, email), each per outcome.
-- `sent` is written before the call and `done` after it: a retry that finds `sent` checks
-- the platform before sending again; one that finds `done` goes on to the next step.
CREATE TABLE restore_reply_steps (
    request_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    step        TEXT NOT NULL,           -- comment | transition | email
    state       TEXT NOT NULL,           -- sent | done
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (request_id, status, step)
);
