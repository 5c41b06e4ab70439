-- Base schema of reseat (PostgreSQL). Timestamps are UTC milliseconds since the epoch.

-- A sweep run: planning or applying, with its progress so that a crash can resume.
CREATE TABLE sweep_runs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,              -- plan | apply | sweep
    plan_id      TEXT,
    status       TEXT NOT NULL,              -- running | completed | aborted | failed
    mode         TEXT NOT NULL,              -- dry-run | live
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    summary      TEXT NOT NULL DEFAULT '{}', -- JSON
    error        TEXT
);

-- A persisted plan and its rows: one per user x product.
CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    source      TEXT NOT NULL,               -- api | csv:<file>
    site        TEXT NOT NULL,
    status      TEXT NOT NULL,               -- planned | applying | applied | aborted
    summary     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE plan_items (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id         TEXT NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    product         TEXT NOT NULL,
    email           TEXT,
    display_name    TEXT,
    decision        TEXT NOT NULL,           -- keep | warn | remove | suspend | delete | exempt | unknown
    reason          TEXT NOT NULL,
    last_active     BIGINT,
    threshold_days  BIGINT,
    excluded        BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending', -- pending | done | skipped | failed
    applied_at      BIGINT,
    UNIQUE (plan_id, account_id, product)
);
CREATE INDEX plan_items_by_decision ON plan_items (plan_id, decision);

-- Exactly which memberships reseat removed (and later restored), so a restore is exact.
CREATE TABLE journal (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    action      TEXT NOT NULL,               -- removed | restored
    run_id      TEXT,
    request_id  TEXT,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, product, site, group_id, action, run_id)
);
CREATE INDEX journal_by_account ON journal (account_id, product, site);

-- Every restore request, whichever channel it came from; deduplicated by its key.
CREATE TABLE restore_requests (
    id               TEXT PRIMARY KEY,
    channel          TEXT NOT NULL,          -- jsm | automation | webhook | link
    idempotency_key  TEXT NOT NULL UNIQUE,
    account_id       TEXT,
    product          TEXT,
    status           TEXT NOT NULL,          -- received | processing | pending | restored | denied | failed
    decision         TEXT,                   -- approve | manual | deny
    matched_rule     TEXT,
    reason           TEXT,
    payload          TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX restore_requests_by_status ON restore_requests (status, created_at);

-- Append-only audit trail.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    account_id  TEXT,
    product     TEXT,
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_account ON audit_log (account_id, at);
CREATE INDEX audit_log_by_action ON audit_log (action, at);

-- Rendered messages waiting to be sent; one per dedupe key.
CREATE TABLE email_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key  TEXT NOT NULL UNIQUE,
    template    TEXT NOT NULL,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    status      TEXT NOT NULL,               -- queued | sent | dead
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);

-- Link tokens issued, and when each was consumed (a token works once).
CREATE TABLE link_tokens (
    token_id    TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,               -- restore | keep
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- The durable job queue.
CREATE TABLE jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedupe_key    TEXT UNIQUE,
    state         TEXT NOT NULL,             -- queued | running | done | dead
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    run_at        BIGINT NOT NULL,          -- not before
    lease_until   BIGINT,
    locked_by     TEXT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
