-- PostgreSQL's migration 0014 gives the worker's inbox read and settle one plan each, whatever
-- its statistics say. SQLite plans without statistics; it gets the same index, so that the
-- due events come out of it in the order they are read (received, then id) without a sort.
CREATE INDEX stripe_events_due_in_order ON stripe_events (received_at, event_id)
    WHERE status = 'pending';
DROP INDEX stripe_events_due;
