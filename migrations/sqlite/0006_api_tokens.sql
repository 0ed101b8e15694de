-- Bearer tokens for a campaign's API: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    role        TEXT NOT NULL CHECK (role IN ('treasurer', 'auditor')),
    token_hash  TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
