-- The Stripe webhook inbox: every verified event, stored raw before it is acknowledged, once
-- per Stripe event id. A worker posts pending events to the ledger. Unlike the journal this
-- table is a work queue: its status columns change as events are processed.
CREATE TABLE stripe_events (
    event_id     TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    livemode     INTEGER NOT NULL CHECK (livemode IN (0, 1)),
    -- Stripe's `created`, Unix seconds: when the event happened at Stripe.
    created      INTEGER NOT NULL,
    api_version  TEXT,
    -- The exact bytes Stripe signed, so the signature can be re-checked and nothing is lost
    -- to re-serialisation.
    payload      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    -- pending: to post; posted: in the ledger; ignored: a type we do not post (kept);
    -- parked: failed too often, listed for the treasurer.
    status       TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'ignored', 'parked')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    processed_at INTEGER
);
CREATE INDEX stripe_events_pending ON stripe_events (received_at) WHERE status = 'pending';
