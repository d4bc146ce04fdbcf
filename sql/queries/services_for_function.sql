-- Which services spend most in a function: its cum (and flat) per service over a window, and
-- the share of each service's total for the sample type.
-- Params: function, profile_type, sample_type, from, to, limit.
SELECT f.service AS service, f.flat AS flat, f.cum AS cum, t.total AS service_total,
       if(t.total = 0, 0, f.cum / t.total) AS cum_share
FROM
(
    SELECT service, sum(flat) AS flat, sum(cum) AS cum
    FROM function_values
    WHERE profile_type = {profile_type:String} AND sample_type = {sample_type:String}
      AND function = {function:String}
      AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
    GROUP BY service
) AS f
LEFT JOIN
(
    SELECT service, sum(totals[indexOf(sample_types, {sample_type:String})]) AS total
    FROM profiles FINAL
    WHERE profile_type = {profile_type:String} AND has(sample_types, {sample_type:String})
      AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
    GROUP BY service
) AS t USING service
ORDER BY cum DESC, service
LIMIT {limit:UInt32}
