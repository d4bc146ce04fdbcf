-- Stack values as arrays: one `stack_samples` row per profile, sample type and `ingest` row
-- (stack hashes with their non-zero values), where `stack_values` took a row per stack and
-- sample type. A production heap profile has tens of thousands of stacks and four sample types:
-- ClickHouse sorted and wrote over 100,000 rows for each, more work than everything else the
-- pipeline does for it. Readers keep the row shape: `stack_values` becomes a view that unrolls
-- the arrays (and still shows the rows written before this migration, kept as
-- `stack_values_rows`).
-- Run it with the workers stopped: between dropping the old view and creating the new one an
-- insert would write no stacks.
CREATE TABLE IF NOT EXISTS {db}.stack_samples{local}{on_cluster}
(
    ts           DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service      LowCardinality(String),
    profile_type LowCardinality(String),
    sample_type  LowCardinality(String),
    labels       Map(LowCardinality(String), String),
    profile_id   UUID CODEC(ZSTD(1)),
    stack_hash   Array(UInt64) CODEC(ZSTD(1)),
    value        Array(Int64) CODEC(ZSTD(1))
)
ENGINE = {merge_tree}
PARTITION BY toDate(ts)
ORDER BY (profile_type, sample_type, service, toStartOfHour(ts))
TTL toDateTime(ts) + INTERVAL {ttl_raw_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.stack_samples{on_cluster} AS {db}.stack_samples_local ENGINE = Distributed({cluster}, {db}, stack_samples_local, cityHash64(profile_id));
DROP VIEW IF EXISTS {db}.ingest_stack_values_mv{local}{on_cluster};
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_stack_samples_mv{local}{on_cluster}
TO {db}.stack_samples{local} AS
SELECT ts, service, profile_type, sample_types[t] AS sample_type, labels, profile_id,
       arrayFilter((h, v) -> v != 0, st_hash, arrayMap(x -> x[t], st_values)) AS stack_hash,
       arrayFilter(v -> v != 0, arrayMap(x -> x[t], st_values)) AS value
FROM {db}.ingest{local}
ARRAY JOIN arrayEnumerate(sample_types) AS t
WHERE notEmpty(st_hash) AND notEmpty(value);
-- cluster-only
DROP TABLE IF EXISTS {db}.stack_values{on_cluster};
RENAME TABLE IF EXISTS {db}.stack_values{local} TO {db}.stack_values_rows{local}{on_cluster};
-- cluster-only
CREATE TABLE IF NOT EXISTS {db}.stack_values_rows{on_cluster} AS {db}.stack_values_rows_local ENGINE = Distributed({cluster}, {db}, stack_values_rows_local, cityHash64(profile_id));
CREATE VIEW IF NOT EXISTS {db}.stack_values{on_cluster} AS
SELECT ts, service, profile_type, sample_type, stack_hash, value, labels, profile_id
FROM {db}.stack_samples
ARRAY JOIN stack_hash, value
UNION ALL
SELECT ts, service, profile_type, sample_type, stack_hash, value, labels, profile_id
FROM {db}.stack_values_rows;
