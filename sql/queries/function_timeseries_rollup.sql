-- function_timeseries.sql from the hourly rollup: steps are whole hours (step >= 3600).
SELECT toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS t, service, sum(flat) AS flat, sum(cum) AS cum
FROM function_values_hourly
WHERE profile_type = {profile_type:String}
  AND sample_type = {sample_type:String}
  AND function = {function:String}
  AND bucket >= {from:DateTime64(3)} AND bucket < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY t, service
ORDER BY t, service
