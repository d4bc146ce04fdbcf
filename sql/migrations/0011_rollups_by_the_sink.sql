-- The rollups are written by the sink: one plain insert per rollup table and batch, of the
-- batch's sums by key, under the batch's deduplication token (`sql/src/sink/writer.rs`), where
-- views behind `function_values` summed each insert. A view's insert could commit in one rollup
-- and fail in another; the batch, split to isolate the profile ClickHouse refused, was then
-- written again, and the rollup that had committed counted it twice (the raw rows can be
-- deleted per profile, a rollup's sums cannot). A plain insert holds a batch's sums whole or not
-- at all, so the sink can take them back exactly before it splits a batch.
-- Run it with the workers stopped and start the new release's workers after it: workers of the
-- previous release would write no rollups once the views are gone, and workers of this release
-- would write them twice while the views remain.
DROP VIEW IF EXISTS {db}.function_values_hourly_mv{on_cluster};
DROP VIEW IF EXISTS {db}.function_values_daily_mv{on_cluster};
-- In a cluster the sink inserts through the Distributed tables, which now need a sharding key:
-- all rows of a key go to one shard, so its merges sum them into one.
-- cluster-only
DROP TABLE IF EXISTS {db}.function_values_hourly{on_cluster} SYNC;
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.function_values_hourly{on_cluster} AS {db}.function_values_hourly_local ENGINE = Distributed({cluster}, {db}, function_values_hourly_local, cityHash64(profile_type, sample_type, service, function));
-- cluster-only
DROP TABLE IF EXISTS {db}.function_values_daily{on_cluster} SYNC;
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.function_values_daily{on_cluster} AS {db}.function_values_daily_local ENGINE = Distributed({cluster}, {db}, function_values_daily_local, cityHash64(profile_type, sample_type, service, function));
