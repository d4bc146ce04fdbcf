-- Stored profiles' metadata, newest first (profefe's `GET /api/0/profiles`).
-- Params: service ('' = all), profile_type ('' = all), from, to (DateTime64(3), half-open),
-- label_keys/label_values (parallel arrays: every pair must match; empty = all), limit.
SELECT toString(profile_id) AS id, profile_type, service,
       mapKeys(labels) AS label_keys, mapValues(labels) AS label_values,
       toUnixTimestamp64Milli(ts) AS ts_ms, source_bucket, source_key
FROM profiles FINAL
WHERE ({service:String} = '' OR service = {service:String})
  AND ({profile_type:String} = '' OR profile_type = {profile_type:String})
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
  AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
ORDER BY ts DESC, id
LIMIT {limit:UInt32}
