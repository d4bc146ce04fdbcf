-- Hourly and daily rollups per service × profile type × sample type × function, fed by
-- materialized views on function_values. SummingMergeTree: queries still sum() and GROUP BY,
-- so answers are exact before and after background merges. `profiles` counts the profiles
-- that contributed (for averages).
CREATE TABLE IF NOT EXISTS {db}.function_values_hourly{local}{on_cluster}
(
    bucket       DateTime('UTC') CODEC(Delta, ZSTD(1)),
    service      LowCardinality(String),
    profile_type LowCardinality(String),
    sample_type  LowCardinality(String),
    function     LowCardinality(String),
    flat         Int64 CODEC(T64, ZSTD(1)),
    cum          Int64 CODEC(T64, ZSTD(1)),
    profiles     UInt64 CODEC(T64, ZSTD(1))
)
ENGINE = {summing}((flat, cum, profiles))
PARTITION BY toYYYYMM(bucket)
ORDER BY (profile_type, sample_type, bucket, service, function)
TTL bucket + INTERVAL {ttl_hourly_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.function_values_hourly_mv{on_cluster}
TO {db}.function_values_hourly{local} AS
SELECT toStartOfHour(ts) AS bucket, service, profile_type, sample_type, function,
       sum(flat) AS flat, sum(cum) AS cum, count() AS profiles
FROM {db}.function_values{local}
GROUP BY bucket, service, profile_type, sample_type, function;

CREATE TABLE IF NOT EXISTS {db}.function_values_daily{local}{on_cluster}
(
    bucket       Date CODEC(Delta, ZSTD(1)),
    service      LowCardinality(String),
    profile_type LowCardinality(String),
    sample_type  LowCardinality(String),
    function     LowCardinality(String),
    flat         Int64 CODEC(T64, ZSTD(1)),
    cum          Int64 CODEC(T64, ZSTD(1)),
    profiles     UInt64 CODEC(T64, ZSTD(1))
)
ENGINE = {summing}((flat, cum, profiles))
PARTITION BY toYYYYMM(bucket)
ORDER BY (profile_type, sample_type, bucket, service, function)
TTL bucket + INTERVAL {ttl_daily_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.function_values_daily_mv{on_cluster}
TO {db}.function_values_daily{local} AS
SELECT toDate(ts) AS bucket, service, profile_type, sample_type, function,
       sum(flat) AS flat, sum(cum) AS cum, count() AS profiles
FROM {db}.function_values{local}
GROUP BY bucket, service, profile_type, sample_type, function;
