-- Distinct stacks (hash → frames, leaf first), shared by every profile that has them, and each
-- profile's value per stack and sample type: enough for flame graphs and merged pprof.
CREATE TABLE IF NOT EXISTS {db}.stacks{local}{on_cluster}
(
    stack_hash UInt64,
    frames     Array(LowCardinality(String)),
    last_seen  DateTime64(3, 'UTC')
)
ENGINE = {replacing}(last_seen)
ORDER BY stack_hash
TTL toDateTime(last_seen) + INTERVAL {ttl_raw_days} DAY;

CREATE TABLE IF NOT EXISTS {db}.stack_values{local}{on_cluster}
(
    ts           DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service      LowCardinality(String),
    profile_type LowCardinality(String),
    sample_type  LowCardinality(String),
    stack_hash   UInt64,
    value        Int64 CODEC(T64, ZSTD(1)),
    labels       Map(LowCardinality(String), String),
    profile_id   UUID CODEC(ZSTD(1))
)
ENGINE = {merge_tree}
PARTITION BY toDate(ts)
ORDER BY (profile_type, sample_type, service, toStartOfHour(ts), stack_hash)
TTL toDateTime(ts) + INTERVAL {ttl_raw_days} DAY;
