-- What changed between A and B: two time windows, or two label selections (e.g.
-- version=1.2 vs version=1.3) over the same window, or both. Absolute and relative change of
-- flat (or cum with by_cum = 1) per function, largest absolute change first.
-- Params: profile_type, sample_type, service ('' = all), a_from, a_to, a_label_keys, a_label_values, b_from, b_to,
-- b_label_keys, b_label_values, by_cum, limit. relative is NULL when A is 0.
SELECT function, sumIf(v, in_a) AS a, sumIf(v, in_b) AS b, b - a AS delta,
       if(a = 0, NULL, (b - a) / abs(a)) AS relative
FROM
(
    SELECT function, if({by_cum:UInt8} = 1, cum, flat) AS v,
           ts >= {a_from:DateTime64(3)} AND ts < {a_to:DateTime64(3)}
             AND arrayAll((k, v) -> labels[k] = v, {a_label_keys:Array(String)}, {a_label_values:Array(String)}) AS in_a,
           ts >= {b_from:DateTime64(3)} AND ts < {b_to:DateTime64(3)}
             AND arrayAll((k, v) -> labels[k] = v, {b_label_keys:Array(String)}, {b_label_values:Array(String)}) AS in_b
    FROM function_values
    WHERE profile_type = {profile_type:String} AND sample_type = {sample_type:String}
      AND ({service:String} = '' OR service = {service:String})
      AND ((ts >= {a_from:DateTime64(3)} AND ts < {a_to:DateTime64(3)}) OR (ts >= {b_from:DateTime64(3)} AND ts < {b_to:DateTime64(3)}))
)
WHERE in_a OR in_b
GROUP BY function
HAVING a != 0 OR b != 0
ORDER BY abs(delta) DESC, function
LIMIT {limit:UInt32}
