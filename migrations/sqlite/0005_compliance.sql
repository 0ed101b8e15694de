-- The compliance engine: persons (the donors that are one human being), the decisions
-- screen() took with the inputs that replay them, checkout reservations, and the excess
-- refunds a decision made due.

-- The days in which the law lets a campaign collect gifts (both included), when it sets them.
ALTER TABLE campaigns ADD COLUMN financing_from TEXT;
ALTER TABLE campaigns ADD COLUMN financing_until TEXT;

-- A person is the set of donors sharing person_id, the id of one of them (the row a
-- screening locks). Donors are linked automatically by a shared email, card or normalised
-- name and address; a treasurer's merge or split places a donor by hand, after which
-- automatic linking leaves it where it was put.
-- (SQLite cannot add a NOT NULL column without a default: the store always sets it.)
ALTER TABLE donors ADD COLUMN person_id INTEGER REFERENCES donors (id);
UPDATE donors SET person_id = id;
ALTER TABLE donors ADD COLUMN placed_by_treasurer INTEGER NOT NULL DEFAULT 0 CHECK (placed_by_treasurer IN (0, 1));
CREATE INDEX donors_by_person ON donors (person_id);

-- How a gift was paid: a Stripe charge is 'card'; cheques, transfers and cash are recorded by
-- the treasurer (their charge_id is the treasurer's own reference, prefixed by the method).
ALTER TABLE contributions ADD COLUMN method TEXT NOT NULL DEFAULT 'card'
    CHECK (method IN ('card', 'cheque', 'transfer', 'direct_debit', 'cash'));
-- What the donor declared (JSON: kind, nationality, residence, attestations, employer,
-- occupation), from Obole's checkout or the treasurer.
ALTER TABLE contributions ADD COLUMN declared TEXT;
-- The election the gift counts for (the campaign's, or the one the donor designated).
ALTER TABLE contributions ADD COLUMN election TEXT;

-- Identity keys ('email:…', 'card:…', 'name-address:…') and the donor that first brought each.
CREATE TABLE identity_links (
    key      TEXT PRIMARY KEY,
    donor_id INTEGER NOT NULL REFERENCES donors (id)
);
CREATE INDEX identity_links_by_donor ON identity_links (donor_id);

-- Every move of a donor from one person to another, automatic or by a treasurer.
CREATE TABLE identity_changes (
    id          INTEGER PRIMARY KEY,
    donor_id    INTEGER NOT NULL REFERENCES donors (id),
    from_person INTEGER NOT NULL,
    to_person   INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('link', 'merge', 'split')),
    reason      TEXT NOT NULL,
    changed_at  INTEGER NOT NULL
);
CREATE INDEX identity_changes_by_donor ON identity_changes (donor_id);

-- Room held for a donor while they pay at checkout: counted against the caps with the
-- ledger until it expires, is released, or its payment posts.
CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    donor_id        INTEGER NOT NULL REFERENCES donors (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    declared        TEXT NOT NULL,
    election        TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    released_at     INTEGER,
    contribution_id INTEGER REFERENCES contributions (id),
    CHECK (expires_at > created_at)
);
CREATE INDEX reservations_open ON reservations (donor_id, expires_at) WHERE released_at IS NULL;

-- Every decision screen() took, with its inputs (JSON: donor, history, gift) so that it can
-- be replayed, and its result as JSON. At most one posting decision per contribution.
CREATE TABLE compliance_decisions (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    stage           TEXT NOT NULL CHECK (stage IN ('checkout', 'posting')),
    contribution_id INTEGER REFERENCES contributions (id),
    reservation_id  INTEGER REFERENCES reservations (id),
    person_id       INTEGER NOT NULL REFERENCES donors (id),
    pack            TEXT NOT NULL,
    pack_version    INTEGER NOT NULL,
    verdict         TEXT NOT NULL CHECK (verdict IN ('accept', 'accept_part', 'refuse', 'hold')),
    rule            TEXT,
    excess          INTEGER NOT NULL CHECK (excess >= 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    remedy_by       TEXT,
    inputs          TEXT NOT NULL,
    decision        TEXT NOT NULL,
    decided_at      INTEGER NOT NULL,
    CHECK ((stage = 'posting') = (contribution_id IS NOT NULL))
);
CREATE UNIQUE INDEX compliance_decisions_one_per_gift ON compliance_decisions (contribution_id)
    WHERE stage = 'posting';
CREATE INDEX compliance_decisions_by_campaign ON compliance_decisions (campaign_id, id);
CREATE TRIGGER compliance_decisions_no_update BEFORE UPDATE ON compliance_decisions
BEGIN SELECT RAISE(ABORT, 'compliance_decisions is append-only'); END;
CREATE TRIGGER compliance_decisions_no_delete BEFORE DELETE ON compliance_decisions
BEGIN SELECT RAISE(ABORT, 'compliance_decisions is append-only'); END;
CREATE TRIGGER identity_changes_no_update BEFORE UPDATE ON identity_changes
BEGIN SELECT RAISE(ABORT, 'identity_changes is append-only'); END;
CREATE TRIGGER identity_changes_no_delete BEFORE DELETE ON identity_changes
BEGIN SELECT RAISE(ABORT, 'identity_changes is append-only'); END;

-- The part of a gift owed back to the donor (an excess, or a whole gift from a source the law
-- refuses), and Obole's request to Stripe to refund it. Whether it is settled is read from
-- the ledger (liabilities:refunds_due per contribution), never from this table.
CREATE TABLE excess_refunds (
    contribution_id INTEGER PRIMARY KEY REFERENCES contributions (id),
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
    requested_at    INTEGER
);
CREATE INDEX excess_refunds_unrequested ON excess_refunds (created_at) WHERE refund_id IS NULL;
