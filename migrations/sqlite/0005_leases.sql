-- Named leases: one holder at a time across every process sharing the database (the
-- scheduled sweep runs on one replica only). A lease expires so a dead holder frees it.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
