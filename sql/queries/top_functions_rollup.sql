-- Fleet top-N functions from a rollup ({rollup} = function_values_hourly or _daily): the same
-- answer as top_functions.sql when from/to fall on the rollup's bucket grid and no label
-- filter is given. Params as top_functions.sql, without labels.
SELECT function, sum(flat) AS flat, sum(cum) AS cum
FROM {rollup}
WHERE profile_type = {profile_type:String}
  AND sample_type = {sample_type:String}
  AND bucket >= {from:DateTime64(3)} AND bucket < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY function
HAVING flat != 0 OR cum != 0
ORDER BY if({by_cum:UInt8} = 1, abs(cum), abs(flat)) DESC, function ASC, if({by_cum:UInt8} = 1, abs(flat), abs(cum)) DESC
LIMIT {limit:UInt32}
