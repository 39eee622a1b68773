-- The web console (issue 13): an account may have a console password
-- (a salted Argon2id hash in PHC form, never the password), and sign-ins
-- become server-side sessions. Sessions live here rather than in one
-- process's memory so that every vpcd sharing the database serves them.
-- Only a SHA-256 of the session token is stored: a copy of the database
-- cannot be used to take a session over. `secret_id` is the key a session
-- was opened with (NULL for a password sign-in): disabling that key ends it.
ALTER TABLE accounts ADD COLUMN console_password TEXT;

CREATE TABLE console_sessions (
    token_hash  TEXT    COLLATE "C" PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    secret_id   TEXT    COLLATE "C" REFERENCES api_keys (secret_id),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
