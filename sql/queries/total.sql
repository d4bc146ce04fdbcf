-- The sample type's total over the profiles of a window (the 100% of a top table), the
-- profiles counted and their samples (the n of the report's significance test).
-- Params: profile_type, sample_type, from, to, service ('' = all), label_keys, label_values.
SELECT sum(totals[indexOf(sample_types, {sample_type:String})]) AS total, count() AS profiles, sum(sample_count) AS samples
FROM profiles FINAL
WHERE profile_type = {profile_type:String}
  AND has(sample_types, {sample_type:String})
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
