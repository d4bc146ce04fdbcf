-- The headers of the profiles a merge covers, one row per distinct (sample types, period type,
-- default sample type), earliest first: what `merge` needs to rebuild a pprof header the way
-- pprof's Merge does (largest period, summed durations, earliest time).
-- Params: profile_type, from, to (DateTime64(3), half-open), service ('' = all),
-- label_keys/label_values (parallel arrays: every pair must match; empty = all).
SELECT sample_types, period_type, default_sample_type,
       max(period) AS period, sum(duration_ns) AS duration_ns,
       toUnixTimestamp64Milli(min(ts)) AS ts_ms, count() AS profiles
FROM profiles FINAL
WHERE profile_type = {profile_type:String}
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
GROUP BY sample_types, period_type, default_sample_type
ORDER BY ts_ms, profiles DESC
