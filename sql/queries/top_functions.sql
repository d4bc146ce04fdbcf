-- Fleet top-N functions from the raw per-profile rows (any time range, label filters).
-- Params: profile_type, sample_type, from, to (DateTime64(3), half-open), service ('' = all),
-- label_keys/label_values (parallel arrays: every pair
-- must match; empty = all), by_cum (0 = order by flat), limit.
SELECT function, sum(flat) AS flat, sum(cum) AS cum
FROM function_values
WHERE profile_type = {profile_type:String}
  AND sample_type = {sample_type:String}
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
GROUP BY function
HAVING flat != 0 OR cum != 0
ORDER BY if({by_cum:UInt8} = 1, abs(cum), abs(flat)) DESC, function ASC, if({by_cum:UInt8} = 1, abs(flat), abs(cum)) DESC
LIMIT {limit:UInt32}
