-- Admin pages: signed-in sessions and one-time login links. Only SHA-256 digests of the
-- cookie value and of the link token are stored, so a copy of the database opens nothing.
CREATE TABLE admin_sessions (
    token_sha256  TEXT PRIMARY KEY,
    admin         TEXT NOT NULL,
    csrf          TEXT NOT NULL,           -- the per-session token every form carries
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);

CREATE TABLE admin_login_links (
    token_sha256  TEXT PRIMARY KEY,
    admin         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);
