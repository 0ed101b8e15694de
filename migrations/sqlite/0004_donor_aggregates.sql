-- A donor's net giving, read from the ledger for the compliance engine: the entries of each
-- contribution (its gift, refunds, chargebacks), and each donor's contributions by date.
CREATE INDEX entries_by_contribution ON entries (contribution_id) WHERE contribution_id IS NOT NULL;
CREATE INDEX contributions_by_donor ON contributions (donor_id, paid_at);
