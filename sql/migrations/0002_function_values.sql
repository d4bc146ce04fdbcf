-- One row per profile × sample type × function: pprof-exact flat and cum.
-- ORDER BY puts the fleet top-N filter (type, sample type, time) first; a bloom filter on
-- `function` serves one function's time series; day partitions make TTL drop whole parts.
CREATE TABLE IF NOT EXISTS {db}.function_values{local}{on_cluster}
(
    ts           DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service      LowCardinality(String),
    profile_type LowCardinality(String),
    sample_type  LowCardinality(String),
    function     LowCardinality(String),
    flat         Int64 CODEC(T64, ZSTD(1)),
    cum          Int64 CODEC(T64, ZSTD(1)),
    labels       Map(LowCardinality(String), String),
    profile_id   UUID CODEC(ZSTD(1)),
    INDEX function_bf function TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {merge_tree}
PARTITION BY toDate(ts)
ORDER BY (profile_type, sample_type, toStartOfHour(ts), service, function)
TTL toDateTime(ts) + INTERVAL {ttl_raw_days} DAY;
