-- Bearer tokens for a campaign's API: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    role        TEXT NOT NULL CHECK (role IN ('treasurer', 'auditor')),
    token_hash  TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Every report served: who (a token, or the command line), which, as of when, in what form.
CREATE TABLE report_access (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    token_id    INTEGER REFERENCES api_tokens (id),
    role        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    as_of       INTEGER NOT NULL,
    format      TEXT NOT NULL,
    served_at   INTEGER NOT NULL
);
CREATE INDEX report_access_by_campaign ON report_access (campaign_id, served_at);
CREATE TRIGGER report_access_no_update BEFORE UPDATE ON report_access
BEGIN SELECT RAISE(ABORT, 'report_access is append-only'); END;
CREATE TRIGGER report_access_no_delete BEFORE DELETE ON report_access
BEGIN SELECT RAISE(ABORT, 'report_access is append-only'); END;
