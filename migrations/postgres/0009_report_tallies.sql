-- The summary's gift figures without reading every gift (src/reports/tally.rs).
--
-- A contribution is counted when its first ledger entry is sealed, once and for good (a
-- row here, never updated): `counted_at` is when it entered the books (the later of its
-- payment and its earliest entry), `kept` what the books kept of it (its amount less the
-- excess set aside when it posted).
CREATE TABLE counted_gifts (
    contribution_id BIGINT PRIMARY KEY REFERENCES contributions (id),
    campaign_id     BIGINT NOT NULL REFERENCES campaigns (id),
    counted_at      TIMESTAMPTZ NOT NULL,
    kept            BIGINT NOT NULL
);
CREATE INDEX counted_gifts_by_time ON counted_gifts (campaign_id, counted_at) INCLUDE (kept);

-- Each person's first counted gift with something kept.
CREATE TABLE donor_firsts (
    person_id   BIGINT PRIMARY KEY REFERENCES donors (id),
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    first_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX donor_firsts_by_time ON donor_firsts (campaign_id, first_at);

-- Counts per UTC day and month: `gifts` by kept amount, `first_gifts` (persons, kept = 0)
-- by the time of their first gift. Derived data, maintained by the sealer and by merges.
CREATE TABLE tallies (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    figure      TEXT NOT NULL CHECK (figure IN ('gifts', 'first_gifts')),
    span        TEXT NOT NULL CHECK (span IN ('day', 'month')),
    bucket      BIGINT NOT NULL,
    kept        BIGINT NOT NULL,
    count       BIGINT NOT NULL CHECK (count >= 0),
    -- Keyed for the reads: a campaign's months (or days) before an instant are one range.
    PRIMARY KEY (campaign_id, span, bucket, figure, kept)
);

-- What each sealed entry linked to a gift moved on the gift's accounts (income:donations and
-- its refunds and chargebacks; credits negative), so the donor register reads what the books
-- kept of a gift by any instant from one index, not from its entries' postings. Written by
-- the sealer with the entry's seal, never updated.
CREATE TABLE gift_movements (
    entry_id        BIGINT PRIMARY KEY REFERENCES entries (id),
    contribution_id BIGINT NOT NULL REFERENCES contributions (id),
    effective_at    TIMESTAMPTZ NOT NULL,
    amount          BIGINT NOT NULL
);
CREATE INDEX gift_movements_by_contribution ON gift_movements (contribution_id) INCLUDE (effective_at, amount);

-- Contributions already in sealed books.
INSERT INTO counted_gifts (contribution_id, campaign_id, counted_at, kept)
SELECT c.id, c.campaign_id,
       greatest(c.paid_at, (SELECT min(e.effective_at) FROM entries e WHERE e.contribution_id = c.id)),
       c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                            WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0)
FROM contributions c
WHERE EXISTS (SELECT 1 FROM entries e JOIN seals s ON s.entry_id = e.id WHERE e.contribution_id = c.id);

INSERT INTO donor_firsts (person_id, campaign_id, first_at)
SELECT d.person_id, d.campaign_id, min(g.counted_at)
FROM counted_gifts g JOIN contributions c ON c.id = g.contribution_id JOIN donors d ON d.id = c.donor_id
WHERE g.kept > 0
GROUP BY d.person_id, d.campaign_id;

INSERT INTO tallies (campaign_id, figure, span, bucket, kept, count)
SELECT campaign_id, 'gifts', span, bucket, kept, count(*) FROM (
    SELECT campaign_id, kept, 'day' AS span, floor(extract(epoch FROM counted_at) / 86400)::int8 AS bucket
    FROM counted_gifts WHERE kept > 0
    UNION ALL
    SELECT campaign_id, kept, 'month',
           ((extract(year FROM counted_at AT TIME ZONE 'UTC') - 1970) * 12
            + extract(month FROM counted_at AT TIME ZONE 'UTC') - 1)::int8
    FROM counted_gifts WHERE kept > 0
) AS counted
GROUP BY campaign_id, span, bucket, kept;

INSERT INTO tallies (campaign_id, figure, span, bucket, kept, count)
SELECT campaign_id, 'first_gifts', span, bucket, 0, count(*) FROM (
    SELECT campaign_id, 'day' AS span, floor(extract(epoch FROM first_at) / 86400)::int8 AS bucket
    FROM donor_firsts
    UNION ALL
    SELECT campaign_id, 'month',
           ((extract(year FROM first_at AT TIME ZONE 'UTC') - 1970) * 12
            + extract(month FROM first_at AT TIME ZONE 'UTC') - 1)::int8
    FROM donor_firsts
) AS firsts
GROUP BY campaign_id, span, bucket;

INSERT INTO gift_movements (entry_id, contribution_id, effective_at, amount)
SELECT e.id, e.contribution_id, e.effective_at,
       coalesce((SELECT sum(p.amount) FROM postings p JOIN accounts a ON a.id = p.account_id
                 WHERE p.entry_id = e.id
                   AND a.name IN ('income:donations', 'income:donations:refunds', 'income:donations:chargebacks')), 0)
FROM entries e JOIN seals s ON s.entry_id = e.id
WHERE e.contribution_id IS NOT NULL;
