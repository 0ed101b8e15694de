-- A gift can owe money back more than once: its own excess when it posted (round 0), and
-- later the part a won dispute reinstates over the donor's cap (rounds 1, 2, …). Each round
-- is its own refund request, with its own idempotency key at the provider. SQLite cannot
-- change a primary key in place: the table is rebuilt.
CREATE TABLE excess_refunds_by_round (
    contribution_id INTEGER NOT NULL REFERENCES contributions (id),
    round           INTEGER NOT NULL DEFAULT 0 CHECK (round >= 0),
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    reason          TEXT NOT NULL,
    remedy_by       TEXT,
    refund_id       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    -- After a failed request, not before this (exponential backoff).
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    requested_at    INTEGER,
    PRIMARY KEY (contribution_id, round)
);
INSERT INTO excess_refunds_by_round (contribution_id, round, campaign_id, amount, currency, reason,
    remedy_by, refund_id, attempts, last_error, next_attempt_at, created_at, requested_at)
SELECT contribution_id, 0, campaign_id, amount, currency, reason, remedy_by, refund_id, attempts,
    last_error, next_attempt_at, created_at, requested_at
FROM excess_refunds;
DROP TABLE excess_refunds;
ALTER TABLE excess_refunds_by_round RENAME TO excess_refunds;
CREATE INDEX excess_refunds_unrequested ON excess_refunds (created_at) WHERE refund_id IS NULL;
