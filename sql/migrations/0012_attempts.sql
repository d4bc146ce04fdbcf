-- Exactly once across a crash (sql/README.md, "Exactly once"). A batch goes in as its data, its
-- rollup sums and its markers, one insert each. A writer killed between the first and the last
-- leaves rows that its profiles' replay, in other batches under other tokens, would write again.
-- So every write now records its intent first (which profiles, under which token, in
-- `sink_intents`) and tags the raw rows it writes with that token (`attempt`). A later write that
-- finds some of its profiles under another token whose writer has gone quiet takes that
-- attempt back out exactly: its raw rows by their tag, its rollup sums negated.
--
-- No stop is needed: the views are changed in place (MODIFY QUERY), `attempt` defaults to
-- empty, and workers of the previous release keep writing untagged rows meanwhile.
ALTER TABLE {db}.ingest{local}{on_cluster} ADD COLUMN IF NOT EXISTS attempt String;
ALTER TABLE {db}.ingest{on_cluster} ADD COLUMN IF NOT EXISTS attempt String;
ALTER TABLE {db}.function_values{local}{on_cluster} ADD COLUMN IF NOT EXISTS attempt LowCardinality(String) DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE {db}.function_values{on_cluster} ADD COLUMN IF NOT EXISTS attempt LowCardinality(String) DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE {db}.stack_samples{local}{on_cluster} ADD COLUMN IF NOT EXISTS attempt LowCardinality(String) DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE {db}.stack_samples{on_cluster} ADD COLUMN IF NOT EXISTS attempt LowCardinality(String) DEFAULT '' CODEC(ZSTD(1));
ALTER TABLE {db}.ingest_function_values_mv{local}{on_cluster} MODIFY QUERY
SELECT ts, service, profile_type, sample_types[fn_type + 1] AS sample_type, fn_name AS function,
       fn_flat AS flat, fn_cum AS cum, labels, profile_id, attempt
FROM {db}.ingest{local}
ARRAY JOIN fn_type, fn_name, fn_flat, fn_cum;
ALTER TABLE {db}.ingest_stack_samples_by_type_mv{local}{on_cluster} MODIFY QUERY
SELECT ts, service, profile_type, sample_type, labels, profile_id, stack_hash, value, attempt
FROM {db}.ingest{local}
ARRAY JOIN arrayResize(sample_types, length(by_type_hash)) AS sample_type, by_type_hash AS stack_hash, by_type_value AS value
WHERE notEmpty(stack_hash);
-- Taking an attempt's sums back out of a rollup writes them again under the attempt's token
-- first (a rollup that holds them skips it as a duplicate), so the rollups keep the tokens of
-- more blocks than the raw tables: 10,000 batches, over two hours even at 120 profiles/s.
ALTER TABLE {db}.function_values_hourly{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
ALTER TABLE {db}.function_values_daily{local}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;
-- A discarded token whose rows are all gone (`done = 1`, written after the deletes): its
-- intents are no longer looked at.
ALTER TABLE {db}.sink_discards{local}{on_cluster} ADD COLUMN IF NOT EXISTS done UInt8 DEFAULT 0;
ALTER TABLE {db}.sink_discards{on_cluster} ADD COLUMN IF NOT EXISTS done UInt8 DEFAULT 0;
-- One row per profile per write attempt (written again on every retry: `at` is the attempt's
-- heartbeat); `lo`/`hi` bound the attempt's profile times, so taking it back out reads only
-- the partitions it wrote. Looked up by profile id, before every write.
CREATE TABLE IF NOT EXISTS {db}.sink_intents{local}{on_cluster}
(
    profile_id UUID,
    token      String,
    lo         DateTime64(3, 'UTC'),
    hi         DateTime64(3, 'UTC'),
    at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {merge_tree}
ORDER BY (profile_id, token)
TTL toDateTime(at) + INTERVAL 7 DAY;
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.sink_intents{on_cluster} AS {db}.sink_intents_local ENGINE = Distributed({cluster}, {db}, sink_intents_local, cityHash64(profile_id));
