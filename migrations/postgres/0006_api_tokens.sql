-- Bearer tokens for a campaign's API: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    role        TEXT NOT NULL CHECK (role IN ('treasurer', 'auditor')),
    token_hash  TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
