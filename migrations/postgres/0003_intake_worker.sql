-- The intake worker: retry scheduling for inbox events, and the donors and contributions that
-- paid Stripe charges become.

-- When a pending event may next be tried (NULL: at once). Failed attempts push it back with
-- an exponential backoff; after a bound the event is parked.
ALTER TABLE stripe_events ADD COLUMN next_attempt_at TIMESTAMPTZ;
DROP INDEX stripe_events_pending;
CREATE INDEX stripe_events_due ON stripe_events (received_at) WHERE status = 'pending';
CREATE INDEX stripe_events_parked ON stripe_events (received_at) WHERE status = 'parked';

-- A donor as the payment provider describes them. identity_key is the normalised email (or,
-- without one, the card fingerprint or charge id); finer identity resolution (name and
-- address, merges) belongs to the compliance engine.
CREATE TABLE donors (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id  BIGINT NOT NULL REFERENCES campaigns (id),
    identity_key TEXT NOT NULL,
    name         TEXT,
    email        TEXT,
    line1        TEXT,
    line2        TEXT,
    city         TEXT,
    postal_code  TEXT,
    state        TEXT,
    country      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (campaign_id, identity_key)
);

-- One paid gift: a Stripe charge, with what the donor told Checkout and what the card says.
-- Its money movements are ledger entries linked to it (entries.contribution_id).
CREATE TABLE contributions (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id         BIGINT NOT NULL REFERENCES campaigns (id),
    donor_id            BIGINT NOT NULL REFERENCES donors (id),
    charge_id           TEXT NOT NULL UNIQUE,
    payment_intent_id   TEXT,
    checkout_session_id TEXT,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL CHECK (length(currency) = 3),
    paid_at             TIMESTAMPTZ NOT NULL,
    card_country        TEXT,
    card_fingerprint    TEXT,
    card_brand          TEXT,
    card_funding        TEXT,
    -- Checkout's custom fields as JSON {key: value}.
    custom_fields       TEXT,
    -- Set when the payment could not be attributed from its own metadata.
    review_reason       TEXT,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX contributions_campaign ON contributions (campaign_id, paid_at);
CREATE INDEX contributions_donor ON contributions (donor_id);
