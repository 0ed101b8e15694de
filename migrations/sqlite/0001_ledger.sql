-- The ledger on SQLite. Conventions:
-- * Amounts are INTEGER minor units with a three-letter currency code beside them: exact,
--   and the same representation Stripe uses (see src/money.rs).
-- * Instants are INTEGER microseconds since the Unix epoch, UTC: they sort, compare and
--   round-trip exactly (PostgreSQL's timestamptz has the same precision).
-- * Hashes are 64 lower-case hex digits.
-- * entries, postings and seals are append-only: triggers below refuse UPDATE and DELETE.
--   Corrections are new, reversing entries.

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    rule_pack   TEXT NOT NULL,
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    timezone    TEXT NOT NULL,
    election    TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'income', 'contra_income', 'expense')),
    currency    TEXT NOT NULL,
    UNIQUE (campaign_id, name),
    -- Target of the postings foreign key: a posting's account must be of the entry's
    -- campaign and in the account's currency.
    UNIQUE (campaign_id, id, currency)
);

CREATE TABLE entries (
    id                INTEGER PRIMARY KEY,
    campaign_id       INTEGER NOT NULL REFERENCES campaigns (id),
    idempotency_key   TEXT NOT NULL,
    content_hash      TEXT NOT NULL CHECK (length(content_hash) = 64),
    description       TEXT NOT NULL,
    effective_at      INTEGER NOT NULL,
    recorded_at       INTEGER NOT NULL,
    -- Declared by the writer and checked against the postings before the entry may be sealed.
    posting_count     INTEGER NOT NULL CHECK (posting_count >= 2),
    reverses_entry_id INTEGER,
    source            TEXT,
    event_id          TEXT,
    donor_id          INTEGER,
    contribution_id   INTEGER,
    UNIQUE (campaign_id, idempotency_key),
    UNIQUE (campaign_id, id),
    FOREIGN KEY (campaign_id, reverses_entry_id) REFERENCES entries (campaign_id, id)
);
-- An entry is reversed at most once; a second correction reverses the reversal.
CREATE UNIQUE INDEX entries_reversed_once ON entries (reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX entries_source ON entries (source) WHERE source IS NOT NULL;

CREATE TABLE postings (
    entry_id     INTEGER NOT NULL,
    line         INTEGER NOT NULL,
    campaign_id  INTEGER NOT NULL,
    account_id   INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount <> 0),
    -- A copy of the entry's effective_at, so "balance as of" is one index range scan.
    effective_at INTEGER NOT NULL,
    PRIMARY KEY (entry_id, line),
    FOREIGN KEY (campaign_id, entry_id) REFERENCES entries (campaign_id, id),
    FOREIGN KEY (campaign_id, account_id, currency) REFERENCES accounts (campaign_id, id, currency)
);
-- Covering index for balances: account, time, amount.
CREATE INDEX postings_by_account_time ON postings (account_id, effective_at, amount);

-- Entries written but not sealed yet: the sealer's queue. The writer inserts the row last,
-- in the entry's own transaction; the sealer deletes it in the transaction that seals.
CREATE TABLE pending_seal (
    entry_id INTEGER PRIMARY KEY REFERENCES entries (id)
);

-- The hash chain (src/ledger/seal.rs).
CREATE TABLE seals (
    sequence   INTEGER PRIMARY KEY CHECK (sequence >= 1),
    entry_id   INTEGER NOT NULL UNIQUE REFERENCES entries (id),
    prev_hash  TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash       TEXT NOT NULL CHECK (length(hash) = 64),
    sealed_at  INTEGER NOT NULL
);

-- The chain's head, one row, moved in the same transaction as the seals it covers.
CREATE TABLE seal_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    sequence INTEGER NOT NULL,
    hash     TEXT NOT NULL
);
INSERT INTO seal_head (id, sequence, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Sum of sealed postings per account and UTC hour (bucket = floor(micros / 3.6e9)) and per
-- UTC day (bucket = floor(hour / 24)). Derived data, maintained by the sealer, recomputed by
-- `obole verify`; the amount is the last column so the primary key covers balance queries.
CREATE TABLE rollups (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    span       TEXT NOT NULL CHECK (span IN ('hour', 'day')),
    bucket     INTEGER NOT NULL,
    amount     INTEGER NOT NULL,
    PRIMARY KEY (account_id, span, bucket)
) WITHOUT ROWID;

-- Append-only.
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: post a reversing entry instead'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: post a reversing entry instead'); END;
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'ledger postings are append-only: post a reversing entry instead'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'ledger postings are append-only: post a reversing entry instead'); END;
CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;

-- Double entry, checked by the database: when the writer queues an entry for sealing (its
-- last statement), the entry must have exactly its declared postings, at least two, summing
-- to zero in every currency.
CREATE TRIGGER pending_seal_requires_balanced_entry BEFORE INSERT ON pending_seal
WHEN (SELECT count(*) FROM postings WHERE entry_id = NEW.entry_id)
        <> (SELECT posting_count FROM entries WHERE id = NEW.entry_id)
  OR EXISTS (SELECT 1 FROM postings WHERE entry_id = NEW.entry_id
             GROUP BY currency HAVING sum(amount) <> 0)
BEGIN SELECT RAISE(ABORT, 'unbalanced entry: postings must number posting_count and sum to zero per currency'); END;
