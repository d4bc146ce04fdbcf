-- The processed marker is the last thing written. `profiles` is no longer fed by a view on
-- `ingest`: the sink writes a batch's data through `ingest` (function_values, stacks,
-- stack_values and, behind function_values, the rollups), then its `profiles` rows. A batch
-- that failed half-way (ClickHouse does not make an insert atomic across views) is therefore
-- never taken for stored, and its retry carries the same insert_deduplication_token, so every
-- table that already holds its block skips it and the others get it: nothing lost, nothing
-- doubled. Plain MergeTree tables keep the tokens of their last 1000 blocks for that
-- (replicated tables always deduplicate).
DROP VIEW IF EXISTS {db}.ingest_profiles_mv{local}{on_cluster};
ALTER TABLE {db}.function_values{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.stack_values{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.stacks{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.function_values_hourly{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.function_values_daily{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.profiles{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
-- Tokens of batches whose partial rows were removed (`Writer::discard`) before the batch was
-- split: the same profiles written again must not be skipped as duplicates of a block that is
-- gone, so the next write of that batch uses the next generation of the token.
CREATE TABLE IF NOT EXISTS {db}.sink_discards{local}{on_cluster}
(
    token String,
    at    DateTime('UTC') DEFAULT now()
)
ENGINE = {replacing}
ORDER BY token
TTL at + INTERVAL 30 DAY;
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.sink_discards{on_cluster} AS {db}.sink_discards_local ENGINE = Distributed({cluster}, {db}, sink_discards_local, cityHash64(token));
