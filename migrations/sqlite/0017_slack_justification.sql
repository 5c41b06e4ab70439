-- Why the requester says they need the access: the JSM field, the Slack text, a body field
-- of the automation and webhook calls, the text box of the restore link page.
ALTER TABLE restore_requests ADD COLUMN justification TEXT;

-- Slack requests and approvals: where to answer the requester (response_url, valid for 30
-- minutes, else a direct message to the user id) and where the approval message was posted
-- (chat.update edits it once decided). Kept beside the request, not in its payload, which
-- the API shows: a response_url lets anyone who has it post into the user's Slack.
CREATE TABLE slack_requests (
    request_id        TEXT PRIMARY KEY,
    user_id           TEXT,
    response_url      TEXT,
    created_at        BIGINT NOT NULL,
    approval_channel  TEXT,
    approval_ts       TEXT
);

-- Signed Slack deliveries seen within the tolerance window: the same signed request twice
-- is a replay and is refused. Rows older than the window are pruned.
CREATE TABLE slack_seen (
    signature   TEXT PRIMARY KEY,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX slack_seen_by_time ON slack_seen (seen_at);
