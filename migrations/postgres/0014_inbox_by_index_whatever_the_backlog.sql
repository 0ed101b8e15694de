-- The worker's two inbox statements, read and settle, planned so that their cost follows the
-- round (1,024 events) and not the backlog.
--
-- Planned from statistics, both went wrong exactly when it mattered: the selectivity of
-- `status = 'pending'` comes from the last ANALYZE (none yet on a new database; a few pending
-- events on a quiet one), so during a burst the planner believed 13–20 events pending when
-- thousands were. It then read every pending event (a bitmap scan and a sort) to return the
-- first 1,024, and settled a round by hashing every pending event: 15–20 ms a round each,
-- growing with the backlog, which grows the slower rounds are (auto_explain, BENCHMARKS.md).
--
-- Each is now a function whose planner settings leave one plan: the read walks the pending
-- index in order and stops at the limit; the settle finds each event by its primary key.

CREATE INDEX stripe_events_due_in_order ON stripe_events (received_at, event_id)
    WHERE status = 'pending';
DROP INDEX stripe_events_due;

CREATE FUNCTION due_stripe_events(due_by TIMESTAMPTZ, round_size BIGINT)
RETURNS SETOF stripe_events
LANGUAGE sql STABLE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
    SELECT * FROM stripe_events
    WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= due_by)
    ORDER BY received_at, event_id
    LIMIT round_size
$$;

-- Only a pending event moves: a redelivered or concurrently settled one keeps its first
-- outcome.
CREATE FUNCTION settle_stripe_events(
    event_ids TEXT[], statuses TEXT[], errors TEXT[], next_attempts TIMESTAMPTZ[],
    settled_at TIMESTAMPTZ
)
RETURNS void
LANGUAGE sql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_bitmapscan = off
AS $$
    UPDATE stripe_events AS e SET status = s.status, last_error = s.error,
           next_attempt_at = s.next_attempt_at, attempts = e.attempts + 1,
           processed_at = settled_at
    FROM UNNEST(event_ids, statuses, errors, next_attempts)
         AS s(event_id, status, error, next_attempt_at)
    WHERE e.event_id = s.event_id AND e.status = 'pending'
$$;
