-- Refused requests, counted per minute, action, source and reason: a flood of refused
-- requests adds one row a minute per kind instead of one row each, and every refusal is
-- still counted. Rows are only ever inserted or have their count raised.
CREATE TABLE audit_refusals (
    minute_at   BIGINT NOT NULL,   -- the minute's start, UTC ms
    action      TEXT NOT NULL,     -- restore.rejected, link.rejected, admin.login_failed, ...
    source      TEXT NOT NULL,     -- the channel or the client address
    reason      TEXT NOT NULL,
    count       BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (minute_at, action, source, reason)
);
CREATE INDEX audit_refusals_by_time ON audit_refusals (last_at);
