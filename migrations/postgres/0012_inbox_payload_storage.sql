-- How the inbox stores its payloads (each event's signed bytes, 0.5 to 5 KB):
-- - compressed with lz4 rather than PostgreSQL's default pglz, which cost a third of the
--   time of storing a batch of webhooks and of reading a round of them back;
-- - moved out of line once a row passes 128 bytes, so that settling an event (its status,
--   attempts, error) writes a narrow row instead of copying the payload into a new version.
-- Only rows written from now on are stored this way; older ones stay as they are.
ALTER TABLE stripe_events SET (toast_tuple_target = 128);
DO $$
BEGIN
    ALTER TABLE stripe_events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL is built without lz4: inbox payloads stay compressed with pglz';
END
$$;
