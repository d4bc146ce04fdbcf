-- The worker sends each `ingest` row's stacks already split by sample type: per type, the hashes
-- of the stacks with a non-zero value and those values (`by_type_hash[t]`, `by_type_value[t]`,
-- in `sample_types` order), which is exactly a `stack_samples` row. The view that wrote
-- `stack_samples` from the per-stack arrays (`st_hash`, `st_values`) ran four lambdas per sample
-- type over every stack (`arrayMap` to pick the type's value, `arrayFilter` to drop zeros): on
-- the local engine, about 3× the cost of this one's plain ARRAY JOIN for the same rows.
-- The frames go the same way: only the stacks whose frames the row carries (`frames_hash`,
-- `frames`), where `st_hash`/`st_frames` listed every stack and the view dropped the empty ones.
--
-- The views over the old columns stay, so workers of the previous version keep writing while
-- they are replaced (a row fills either the old columns or the new ones, never both; each view
-- turns the other kind of row into nothing). A later migration drops them.
ALTER TABLE {db}.ingest{local}{on_cluster}
    ADD COLUMN IF NOT EXISTS by_type_hash  Array(Array(UInt64)),
    ADD COLUMN IF NOT EXISTS by_type_value Array(Array(Int64)),
    ADD COLUMN IF NOT EXISTS frames_hash   Array(UInt64),
    ADD COLUMN IF NOT EXISTS frames        Array(Array(String));
-- cluster-only
ALTER TABLE {db}.ingest{on_cluster}
    ADD COLUMN IF NOT EXISTS by_type_hash  Array(Array(UInt64)),
    ADD COLUMN IF NOT EXISTS by_type_value Array(Array(Int64)),
    ADD COLUMN IF NOT EXISTS frames_hash   Array(UInt64),
    ADD COLUMN IF NOT EXISTS frames        Array(Array(String));
-- `arrayResize` makes a row of the old kind (no `by_type_hash`) join nothing instead of failing
-- on arrays of different sizes.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_stack_samples_by_type_mv{local}{on_cluster}
TO {db}.stack_samples{local} AS
SELECT ts, service, profile_type, sample_type, labels, profile_id, stack_hash, value
FROM {db}.ingest{local}
ARRAY JOIN arrayResize(sample_types, length(by_type_hash)) AS sample_type, by_type_hash AS stack_hash, by_type_value AS value
WHERE notEmpty(stack_hash);
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ingest_stack_frames_mv{local}{on_cluster}
TO {db}.stacks{local} AS
SELECT frames_hash AS stack_hash, frames, ts AS last_seen
FROM {db}.ingest{local}
ARRAY JOIN frames_hash, frames;
