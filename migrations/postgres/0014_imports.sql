-- Uploads on the import page: planned in the background on the server that received the
-- file, their progress here so the page shows it from any replica.
CREATE TABLE imports (
    id          TEXT PRIMARY KEY,
    admin       TEXT NOT NULL,
    status      TEXT NOT NULL,          -- running | done | failed
    phase       TEXT NOT NULL,
    rows_read   BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL,
    plan_id     TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
