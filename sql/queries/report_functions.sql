-- Every function's flat and cum in a window and in its baseline window, in one pass over the raw
-- rows: the inputs of `pprofhouse report` (the top table, the change against the baseline and
-- the movers test, which needs every function, not only the top ones).
-- Params: profile_type, sample_type, from, to (the window, half-open), base_from, base_to (the
-- baseline, half-open, not overlapping the window), service ('' = all), label_keys/label_values
-- (parallel arrays: every pair must match; empty = all).
SELECT function,
       sumIf(f, in_window) AS flat, sumIf(c, in_window) AS cum,
       sumIf(f, NOT in_window) AS base_flat, sumIf(c, NOT in_window) AS base_cum
FROM
(
    SELECT function, flat AS f, cum AS c, ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)} AS in_window
    FROM function_values
    WHERE profile_type = {profile_type:String}
      AND sample_type = {sample_type:String}
      AND ((ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}) OR (ts >= {base_from:DateTime64(3)} AND ts < {base_to:DateTime64(3)}))
      AND ({service:String} = '' OR service = {service:String})
      AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
)
GROUP BY function
HAVING flat != 0 OR cum != 0 OR base_flat != 0 OR base_cum != 0
ORDER BY function
