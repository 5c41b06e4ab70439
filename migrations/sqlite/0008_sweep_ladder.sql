-- The sweep ladder's org-level steps: who reseat suspended (once; a second apply does not
-- suspend again while a row is open), and when it removed them from the directory.
CREATE TABLE sweep_suspensions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   TEXT NOT NULL,
    site         TEXT NOT NULL,
    plan_id      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    suspended_at INTEGER NOT NULL,
    deleted_at   INTEGER,
    restored_at  INTEGER,
    UNIQUE (account_id, plan_id)
);
CREATE INDEX sweep_suspensions_open ON sweep_suspensions (account_id, restored_at, deleted_at);
