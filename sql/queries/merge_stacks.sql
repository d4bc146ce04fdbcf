-- Every distinct stack of the profiles a merge covers, with its summed value per sample type
-- (only the non-zero ones) and its frames (function names, leaf first).
-- Params: profile_type, from, to (DateTime64(3), half-open), service ('' = all),
-- label_keys/label_values (parallel arrays: every pair must match; empty = all), limit (the
-- caller asks for one more than it accepts, to tell "too many" from "exactly enough").
WITH
    picked AS
    (
        SELECT stack_hash, groupArray(sample_type) AS types, groupArray(v) AS values
        FROM
        (
            SELECT stack_hash, sample_type, sum(value) AS v
            FROM stack_values
            WHERE profile_type = {profile_type:String}
              AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
              AND ({service:String} = '' OR service = {service:String})
              AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
            GROUP BY stack_hash, sample_type
            HAVING v != 0
        )
        GROUP BY stack_hash
    )
SELECT p.types AS types, p.values AS values, s.frames AS frames
FROM picked AS p
INNER JOIN
(
    SELECT stack_hash, any(frames) AS frames
    FROM stacks
    WHERE stack_hash IN (SELECT stack_hash FROM picked)
    GROUP BY stack_hash
) AS s ON s.stack_hash = p.stack_hash
LIMIT {limit:UInt64}
