-- App access is a role on a resource. A plan item records why its seat bills (the groups
-- and roles that grant it); the role journal records the direct roles a sweep revoked, so a
-- restore grants back exactly those.
ALTER TABLE plan_items ADD COLUMN billing TEXT NOT NULL DEFAULT '{}';

CREATE TABLE role_journal (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    resource    TEXT NOT NULL,               -- the product instance ARI
    role        TEXT NOT NULL,               -- e.g. atlassian/user
    action      TEXT NOT NULL,               -- revoked | restored
    run_id      TEXT,
    request_id  TEXT,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (account_id, product, site, resource, role, action, run_id)
);
CREATE INDEX role_journal_by_account ON role_journal (account_id, product, site);
CREATE UNIQUE INDEX role_journal_restored_once
    ON role_journal (account_id, product, site, resource, role, request_id)
    WHERE action = 'restored';
