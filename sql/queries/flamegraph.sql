-- A flame graph in Grafana's nested-set form (level, value, self, label), depth-first: every
-- stack prefix root→leaf is a node, under one `total` root. Rows ordered by their prefix path
-- are exactly the depth-first order Grafana's flame graph panel reads.
-- Params: profile_type, sample_type, from, to, service ('' = all), label_keys, label_values.
WITH
    picked AS
    (
        SELECT stack_hash, sum(value) AS v
        FROM stack_values
        WHERE profile_type = {profile_type:String} AND sample_type = {sample_type:String}
          AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
          AND ({service:String} = '' OR service = {service:String})
          AND arrayAll((k, v) -> labels[k] = v, {label_keys:Array(String)}, {label_values:Array(String)})
        GROUP BY stack_hash
        HAVING v != 0
    ),
    paths AS
    (
        SELECT arrayConcat(['total'], arrayReverse(s.frames)) AS path, p.v AS v
        FROM picked AS p
        INNER JOIN
        (
            SELECT stack_hash, any(frames) AS frames
            FROM stacks
            WHERE stack_hash IN (SELECT stack_hash FROM picked)
            GROUP BY stack_hash
        ) AS s ON s.stack_hash = p.stack_hash
    )
SELECT toUInt32(length(prefix) - 1) AS level, sum(v) AS value,
       sumIf(v, length(path) = length(prefix)) AS self, prefix[-1] AS label
FROM paths
ARRAY JOIN arrayMap(i -> arraySlice(path, 1, i), range(1, length(path) + 1)) AS prefix
GROUP BY prefix
ORDER BY prefix
