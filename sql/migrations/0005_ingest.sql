-- The sink's single entry point: one INSERT per batch, one row per profile carrying its facts,
-- its per-function rows and its stacks as parallel arrays. The Null engine stores nothing;
-- materialized views fan each batch out to profiles, function_values (and so the rollups),
-- stacks and stack_values. One request per batch means a worker never leaves half a batch
-- behind, and one dedup token covers every table.
CREATE TABLE IF NOT EXISTS {db}.ingest{local}{on_cluster}
(
    profile_id          UUID,
    ts                  DateTime64(3, 'UTC'),
    service             String,
    profile_type        String,
    labels              Map(String, String),
    duration_ns         Int64,
    period_type         String,
    period              Int64,
    sample_types        Array(String),
    totals              Array(Int64),
    default_sample_type String,
    sample_count        UInt64,
    label_keys          Array(String),
    source_bucket       String,
    source_key          String,
    source_etag         String,
    source_size         UInt64,
    decoded_bytes       UInt64,
    fn_type             Array(UInt16),
    fn_name             Array(String),
    fn_flat             Array(Int64),
    fn_cum              Array(Int64),
    st_hash             Array(UInt64),
    st_frames           Array(Array(String)),
    st_values           Array(Array(Int64))
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_profiles_mv{local}{on_cluster}
TO {db}.profiles{local} AS
SELECT profile_id, ts, service, profile_type, labels, duration_ns, period_type, period,
       sample_types, totals, default_sample_type, sample_count, label_keys,
       source_bucket, source_key, source_etag, source_size, decoded_bytes
FROM {db}.ingest{local};

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_function_values_mv{local}{on_cluster}
TO {db}.function_values{local} AS
SELECT ts, service, profile_type, sample_types[fn_type + 1] AS sample_type, fn_name AS function,
       fn_flat AS flat, fn_cum AS cum, labels, profile_id
FROM {db}.ingest{local}
ARRAY JOIN fn_type, fn_name, fn_flat, fn_cum;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_stacks_mv{local}{on_cluster}
TO {db}.stacks{local} AS
SELECT st_hash AS stack_hash, st_frames AS frames, ts AS last_seen
FROM {db}.ingest{local}
ARRAY JOIN st_hash, st_frames
WHERE notEmpty(st_frames);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_stack_values_mv{local}{on_cluster}
TO {db}.stack_values{local} AS
SELECT ts, service, profile_type, sv.1 AS sample_type, st_hash AS stack_hash, sv.2 AS value, labels, profile_id
FROM {db}.ingest{local}
ARRAY JOIN st_hash, st_values
ARRAY JOIN arrayZip(sample_types, st_values) AS sv
WHERE sv.2 != 0;
