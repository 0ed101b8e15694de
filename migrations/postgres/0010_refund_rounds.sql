-- A gift can owe money back more than once: its own excess when it posted (round 0), and
-- later the part a won dispute reinstates over the donor's cap (rounds 1, 2, …). Each round
-- is its own refund request, with its own idempotency key at the provider.
ALTER TABLE excess_refunds ADD COLUMN round INTEGER NOT NULL DEFAULT 0 CHECK (round >= 0);
ALTER TABLE excess_refunds DROP CONSTRAINT excess_refunds_pkey;
ALTER TABLE excess_refunds ADD PRIMARY KEY (contribution_id, round);
