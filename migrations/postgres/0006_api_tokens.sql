-- Bearer tokens for a campaign's API: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    role        TEXT NOT NULL CHECK (role IN ('treasurer', 'auditor')),
    token_hash  TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Every report served: who (a token, or the command line), which, as of when, in what form.
CREATE TABLE report_access (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    token_id    BIGINT REFERENCES api_tokens (id),
    role        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    as_of       TIMESTAMPTZ NOT NULL,
    format      TEXT NOT NULL,
    served_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX report_access_by_campaign ON report_access (campaign_id, served_at);
CREATE TRIGGER report_access_append_only BEFORE UPDATE OR DELETE ON report_access
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_change();
