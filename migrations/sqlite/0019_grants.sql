-- Access given back for a while (a restore rule's `approve_for`): one row per restore that
-- granted it, until when, and when and how it ended (`taken`: the sweep took it back;
-- `superseded`: a restore without an end, or a new grant, replaced it). The sweep keeps the
-- seat until `until_at` and takes it back then, unless the user worked in the product since.
CREATE TABLE grants (
    request_id  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    until_at    BIGINT NOT NULL,
    ended_at    BIGINT,
    ended_by    TEXT
);
CREATE INDEX grants_by_seat ON grants (account_id, product, site, granted_at);
