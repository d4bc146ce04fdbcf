-- One function's flat and cum over time, per service, in buckets of {step} seconds.
-- Params: function, profile_type, sample_type, from, to, step (UInt32 seconds), service ('' = all).
SELECT toStartOfInterval(ts, toIntervalSecond({step:UInt32})) AS t, service, sum(flat) AS flat, sum(cum) AS cum
FROM function_values
WHERE profile_type = {profile_type:String}
  AND sample_type = {sample_type:String}
  AND function = {function:String}
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY t, service
ORDER BY t, service
