-- One row per ingested profile: what it is, where it came from, its totals.
-- ReplacingMergeTree on profile_id: a profile stored twice collapses to one row; the sink also
-- checks this table before inserting, so nothing downstream sees a profile twice.
CREATE TABLE IF NOT EXISTS {db}.profiles{local}{on_cluster}
(
    profile_id          UUID,
    ts                  DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service             LowCardinality(String),
    profile_type        LowCardinality(String),
    labels              Map(LowCardinality(String), String),
    duration_ns         Int64 CODEC(T64, ZSTD(1)),
    period_type         LowCardinality(String),
    period              Int64 CODEC(T64, ZSTD(1)),
    sample_types        Array(LowCardinality(String)),
    totals              Array(Int64),
    default_sample_type LowCardinality(String),
    sample_count        UInt64 CODEC(T64, ZSTD(1)),
    label_keys          Array(LowCardinality(String)),
    source_bucket       LowCardinality(String),
    source_key          String CODEC(ZSTD(1)),
    source_etag         String CODEC(ZSTD(1)),
    source_size         UInt64 CODEC(T64, ZSTD(1)),
    decoded_bytes       UInt64 CODEC(T64, ZSTD(1)),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {replacing}(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (profile_type, service, ts, profile_id)
TTL toDateTime(ts) + INTERVAL {ttl_profiles_days} DAY;
