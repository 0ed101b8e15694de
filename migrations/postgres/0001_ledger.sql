-- The ledger on PostgreSQL. Conventions:
-- * Amounts are BIGINT minor units with a three-letter currency code beside them: exact,
--   and the same representation Stripe uses (see src/money.rs).
-- * Instants are timestamptz (UTC, microsecond precision, as in Rust).
-- * Hashes are 64 lower-case hex digits.
-- * entries, postings and seals are append-only: triggers below refuse UPDATE and DELETE.
--   Corrections are new, reversing entries.
-- * Only standard SQL plus trigger functions: no stored procedures holding business logic.

CREATE TABLE campaigns (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    rule_pack   TEXT NOT NULL,
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    timezone    TEXT NOT NULL,
    election    TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE accounts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'income', 'contra_income', 'expense')),
    currency    TEXT NOT NULL,
    UNIQUE (campaign_id, name),
    -- Target of the postings foreign key: a posting's account must be of the entry's
    -- campaign and in the account's currency.
    UNIQUE (campaign_id, id, currency)
);

-- Entries and postings reference campaigns and accounts without FOREIGN KEY clauses, on
-- purpose: a foreign key check takes a FOR KEY SHARE lock on the referenced row, and every
-- gift references the same few rows (the campaign, income:donations, assets:stripe), so
-- concurrent writers would pile MultiXact locks onto them. Instead campaigns and accounts
-- can never be deleted or re-keyed (triggers below), and the deferred entry check verifies
-- at commit that every posting names an account of the entry's campaign, in its currency.
CREATE TABLE entries (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id       BIGINT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    content_hash      TEXT NOT NULL CHECK (length(content_hash) = 64),
    description       TEXT NOT NULL,
    effective_at      TIMESTAMPTZ NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL,
    -- Declared by the writer and checked against the postings at commit (trigger below).
    posting_count     INTEGER NOT NULL CHECK (posting_count >= 2),
    reverses_entry_id BIGINT,
    source            TEXT,
    event_id          TEXT,
    donor_id          BIGINT,
    contribution_id   BIGINT,
    UNIQUE (campaign_id, idempotency_key),
    UNIQUE (campaign_id, id),
    FOREIGN KEY (campaign_id, reverses_entry_id) REFERENCES entries (campaign_id, id)
);
-- An entry is reversed at most once; a second correction reverses the reversal.
CREATE UNIQUE INDEX entries_reversed_once ON entries (reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX entries_source ON entries (source) WHERE source IS NOT NULL;

CREATE TABLE postings (
    entry_id     BIGINT NOT NULL,
    line         INTEGER NOT NULL,
    campaign_id  BIGINT NOT NULL,
    account_id   BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount <> 0),
    -- A copy of the entry's effective_at, so "balance as of" is one index range scan.
    effective_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, line),
    FOREIGN KEY (campaign_id, entry_id) REFERENCES entries (campaign_id, id)
);
-- Covering index for balances: account, time, amount.
CREATE INDEX postings_by_account_time ON postings (account_id, effective_at) INCLUDE (amount);

-- Entries written but not sealed yet: the sealer's queue. The writer inserts the row in the
-- entry's own statement; the sealer deletes it in the transaction that seals.
CREATE TABLE pending_seal (
    entry_id BIGINT PRIMARY KEY REFERENCES entries (id)
);
-- A queue: every row is deleted soon after it is written. Vacuum it after a few thousand
-- deletions rather than a fraction of its (tiny) size, so the sealer's ordered scan does not
-- wade through dead index entries.
ALTER TABLE pending_seal SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                              autovacuum_vacuum_cost_delay = 0);

-- The hash chain (src/ledger/seal.rs).
CREATE TABLE seals (
    sequence   BIGINT PRIMARY KEY CHECK (sequence >= 1),
    entry_id   BIGINT NOT NULL UNIQUE REFERENCES entries (id),
    prev_hash  TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash       TEXT NOT NULL CHECK (length(hash) = 64),
    sealed_at  TIMESTAMPTZ NOT NULL
);

-- The chain's head, one row, moved in the same transaction as the seals it covers; its row
-- lock is what keeps two sealers (two servers) from extending the chain at once.
CREATE TABLE seal_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    sequence BIGINT NOT NULL,
    hash     TEXT NOT NULL
);
INSERT INTO seal_head (id, sequence, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Sum of sealed postings per account and UTC hour (bucket = floor(epoch micros / 3.6e9))
-- and per UTC day (bucket = floor(hour / 24)). Derived data, maintained by the sealer,
-- recomputed by `obole verify`. Updated in place, so vacuumed by the sealer (see sealer.rs).
CREATE TABLE rollups (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    span       TEXT NOT NULL CHECK (span IN ('hour', 'day')),
    bucket     BIGINT NOT NULL,
    amount     BIGINT NOT NULL,
    PRIMARY KEY (account_id, span, bucket) INCLUDE (amount)
);

-- Append-only.
CREATE FUNCTION obole_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: post a reversing entry instead', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_change();
CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION obole_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION obole_refuse_change();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION obole_refuse_change();

-- Campaigns and accounts are never deleted, and never change identity or currency.
CREATE FUNCTION obole_refuse_rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.currency <> OLD.currency
       OR (TG_TABLE_NAME = 'accounts' AND (NEW.campaign_id <> OLD.campaign_id OR NEW.name <> OLD.name)) THEN
        RAISE EXCEPTION '% rows cannot be deleted or change id, campaign, name or currency', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER campaigns_keep_identity BEFORE UPDATE OR DELETE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_rekey();
CREATE TRIGGER accounts_keep_identity BEFORE UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION obole_refuse_rekey();

-- Double entry, checked by the database at commit: an entry's campaign exists; it has
-- exactly its declared postings, at least two, each on an account of that campaign in the
-- account's currency, summing to zero in every currency. One query per entry.
CREATE FUNCTION obole_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written integer;
    on_campaign_accounts integer;
    balanced boolean;
BEGIN
    SELECT coalesce(sum(n), 0), coalesce(sum(matched), 0), coalesce(bool_and(total = 0), false)
      INTO written, on_campaign_accounts, balanced
      FROM (SELECT count(*) AS n, count(a.id) AS matched, sum(p.amount) AS total
              FROM postings p
              LEFT JOIN accounts a
                ON a.id = p.account_id AND a.campaign_id = NEW.campaign_id AND a.currency = p.currency
             WHERE p.entry_id = NEW.id
             GROUP BY p.currency) AS per_currency;
    IF written <> NEW.posting_count OR NOT balanced THEN
        RAISE EXCEPTION 'unbalanced entry %: % postings written of % declared, or not summing to zero per currency',
            NEW.id, written, NEW.posting_count
            USING ERRCODE = 'check_violation';
    END IF;
    IF on_campaign_accounts <> written THEN
        RAISE EXCEPTION 'entry % posts to an account that is not of campaign % in that currency', NEW.id, NEW.campaign_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION obole_check_entry_balanced();
