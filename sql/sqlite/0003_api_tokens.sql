-- API tokens and UI sessions. Only sha256 hashes of the secrets are stored: a copy of the database
-- does not let anyone call the API. Revoking a token ends its sessions (they join on it).
CREATE TABLE api_token (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
    dir_prefix  TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE api_session (
    id_hash     TEXT PRIMARY KEY,
    token_id    INTEGER NOT NULL REFERENCES api_token (id),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX api_session_token ON api_session (token_id);
