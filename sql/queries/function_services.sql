-- The services that spend most in each of a list of functions over a window (by cum, then
-- flat), at most `per_function` each, with each service's total for the sample type: the
-- "top services" column of `pprofhouse report` in one query.
-- Params: functions (Array(String)), profile_type, sample_type, from, to, service ('' = all),
-- label_keys/label_values, per_function.
SELECT f.function AS function, f.service AS service, f.flat AS flat, f.cum AS cum, t.total AS service_total
FROM
(
    SELECT function, service, sum(flat) AS flat, sum(cum) AS cum
    FROM function_values
    WHERE profile_type = {profile_type:String} AND sample_type = {sample_type:String}
      AND has({functions:Array(String)}, function)
      AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
      AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
    GROUP BY function, service
) AS f
LEFT JOIN
(
    SELECT service, sum(totals[indexOf(sample_types, {sample_type:String})]) AS total
    FROM profiles FINAL
    WHERE profile_type = {profile_type:String} AND has(sample_types, {sample_type:String})
      AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
      AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
    GROUP BY service
) AS t USING service
ORDER BY function, cum DESC, flat DESC, service
LIMIT {per_function:UInt32} BY function
