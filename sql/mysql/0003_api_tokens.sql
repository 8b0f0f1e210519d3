-- API tokens and UI sessions. Only sha256 hashes of the secrets are stored: a copy of the database
-- does not let anyone call the API. Revoking a token ends its sessions (they join on it).
CREATE TABLE api_token (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    role        VARCHAR(16) NOT NULL CHECK (role IN ('viewer','operator','admin')),
    dir_prefix  VARCHAR(255),
    secret_hash CHAR(64) NOT NULL,
    created_by  VARCHAR(255) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    revoked_at  DATETIME(6),
    UNIQUE KEY api_token_name (name),
    UNIQUE KEY api_token_secret (secret_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_session (
    id_hash     CHAR(64) NOT NULL PRIMARY KEY,
    token_id    BIGINT NOT NULL,
    csrf        VARCHAR(64) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    expires_at  DATETIME(6) NOT NULL,
    KEY api_session_token (token_id),
    CONSTRAINT api_session_token_fk FOREIGN KEY (token_id) REFERENCES api_token (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
