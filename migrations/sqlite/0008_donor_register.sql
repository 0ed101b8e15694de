-- The donor register reads a campaign's persons in order, a page at a time.
CREATE INDEX donors_by_campaign_person ON donors (campaign_id, person_id);
