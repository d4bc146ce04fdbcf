-- report_functions.sql from a rollup ({rollup} = function_values_hourly or _daily): the same
-- answer when both windows fall on the rollup's bucket grid and no label filter is given.
-- Params as report_functions.sql, without labels.
SELECT function,
       sumIf(f, in_window) AS flat, sumIf(c, in_window) AS cum,
       sumIf(f, NOT in_window) AS base_flat, sumIf(c, NOT in_window) AS base_cum
FROM
(
    SELECT function, flat AS f, cum AS c, bucket >= {from:DateTime64(3)} AND bucket < {to:DateTime64(3)} AS in_window
    FROM {rollup}
    WHERE profile_type = {profile_type:String}
      AND sample_type = {sample_type:String}
      AND ((bucket >= {from:DateTime64(3)} AND bucket < {to:DateTime64(3)}) OR (bucket >= {base_from:DateTime64(3)} AND bucket < {base_to:DateTime64(3)}))
      AND ({service:String} = '' OR service = {service:String})
)
GROUP BY function
HAVING flat != 0 OR cum != 0 OR base_flat != 0 OR base_cum != 0
ORDER BY function
