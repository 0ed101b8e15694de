-- contributions_by_donor (donor_id, paid_at) answers every question contributions_donor
-- (donor_id) did, as its leading column; the second index only cost every recorded gift
-- one more index entry to write.
DROP INDEX contributions_donor;
