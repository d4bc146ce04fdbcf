-- Before every insert the sink asks which of a batch's profiles are stored already
-- (`existing_ids`). `profiles` is ordered for the fleet's queries by (profile_type, service, ts),
-- so that check read every profile id ever stored, on every batch: 90 ms at 5 million profiles
-- on the local engine, and growing with the table (a fleet stores millions a day). A projection
-- keeps the ids in their own order inside each part, written with the part (so it is never out
-- of step with the markers): the check becomes a primary-key lookup, about one granule per id.
-- ReplacingMergeTree must be told what its merges do to a projection: rebuild it.
ALTER TABLE {db}.profiles{local}{on_cluster} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE {db}.profiles{local}{on_cluster} ADD PROJECTION IF NOT EXISTS by_profile_id (SELECT profile_id ORDER BY profile_id);
ALTER TABLE {db}.profiles{local}{on_cluster} MATERIALIZE PROJECTION by_profile_id;
