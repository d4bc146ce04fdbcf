#!/usr/bin/env python3
"""Writes infra/grafana/dashboards/pprofhouse.json: edit the panels and SQL here, then run
`python3 infra/grafana/dashboard.py` and commit both. `check_dashboard.py` runs every query of
the result against the real ClickHouse engine (chDB). Standard library only.
"""
import json
import pathlib
import re

CH = {"type": "grafana-clickhouse-datasource", "uid": "${clickhouse}"}
PROM = {"type": "prometheus", "uid": "${prometheus}"}

PT = "profile_type = ${profile_type:sqlstring}"
ST = "sample_type = ${sample_type:sqlstring}"
SVC = "(${service:sqlstring} = '' OR service = ${service:sqlstring})"
FN = "function = ${function:sqlstring}"
BYCUM = "${order:sqlstring} = 'cum'"
LIMIT = "toUInt32(${limit:sqlstring})"
# Whole UTC hours inside the dashboard window: [H_FROM, H_TO) is read from the hourly rollup,
# the partial hours at both edges from the raw rows (the same sums; see sql/README.md).
H_FROM = "toStartOfHour(toDateTime($__fromTime, 'UTC') + INTERVAL 3599 SECOND)"
H_TO = "toStartOfHour(toDateTime($__toTime, 'UTC'))"
WINDOW = "ts >= $__fromTime AND ts < $__toTime"

_next_id = [0]
def nid():
    _next_id[0] += 1
    return _next_id[0]

def ch_target(sql, fmt="table", ref="A"):
    return {
        "refId": ref,
        "datasource": CH,
        "editorType": "sql",
        "queryType": "timeseries" if fmt == "timeseries" else "table",
        "format": 0 if fmt == "timeseries" else 1,
        "rawSql": sql.strip("\n"),
    }

def prom_target(expr, legend, ref="A"):
    return {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend, "range": True, "editorMode": "code"}

def row(title, y, collapsed=False, panels=None):
    r = {"type": "row", "id": nid(), "title": title, "collapsed": collapsed,
         "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
    r["panels"] = panels or []
    return r

def pos(x, y, w, h):
    return {"x": x, "y": y, "w": w, "h": h}

# ---------------------------------------------------------------------------------------------
# SQL (adapted from sql/queries/*.sql: {name:Type} parameters -> Grafana variables with the
# :sqlstring format (quoted, ' doubled), {from}/{to} -> $__fromTime/$__toTime).

SQL_STATS = f"""
-- Profiles and services in the window (profiles: one row per ingested profile).
SELECT count() AS profiles, uniqExact(service) AS services,
       if(count() = 0, NULL, toUnixTimestamp64Milli(max(inserted_at))) AS last_ingested
FROM profiles FINAL
WHERE {PT}
  AND {WINDOW}
  AND {SVC}
"""

SQL_TOP = f"""
-- Fleet top-N (sql/queries/top_functions.sql + top_functions_rollup.sql): the whole UTC hours
-- of the window come from function_values_hourly, the partial hours at its edges from raw
-- function_values, so long windows stay cheap and the sums are exact. flat%/cum% are shares
-- of the sample type's total over the same profiles (sql/queries/total.sql).
WITH
    (
        SELECT sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})])
        FROM profiles FINAL
        WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}})
          AND {WINDOW}
          AND {SVC}
    ) AS total
SELECT
    function,
    sum(flat) AS flat,
    if(total = 0, NULL, flat / total) AS flat_share,
    sum(cum) AS cum,
    if(total = 0, NULL, cum / total) AS cum_share
FROM
(
    SELECT function, flat, cum
    FROM function_values_hourly
    WHERE {PT} AND {ST}
      AND bucket >= {H_FROM} AND bucket < {H_TO}
      AND {SVC}
    UNION ALL
    SELECT function, flat, cum
    FROM function_values
    WHERE {PT} AND {ST}
      AND {WINDOW}
      AND (ts < {H_FROM} OR ts >= {H_TO})
      AND {SVC}
)
GROUP BY function
HAVING flat != 0 OR cum != 0
ORDER BY if({BYCUM}, abs(cum), abs(flat)) DESC, function ASC, if({BYCUM}, abs(flat), abs(cum)) DESC
LIMIT {LIMIT}
"""

SQL_TS = f"""
-- One function over time per service (sql/queries/function_timeseries.sql and _rollup.sql):
-- with a whole-hour step ($__interval_s a multiple of 3600) the whole hours come from the
-- hourly rollup and only the window's edges from raw rows; finer steps read raw rows.
SELECT toStartOfInterval(t, toIntervalSecond($__interval_s)) AS time, service, sum(v) AS value
FROM
(
    SELECT toDateTime(bucket, 'UTC') AS t, service, if({BYCUM}, cum, flat) AS v
    FROM function_values_hourly
    WHERE $__interval_s % 3600 = 0
      AND {PT} AND {ST} AND {FN}
      AND bucket >= {H_FROM} AND bucket < {H_TO}
      AND {SVC}
    UNION ALL
    SELECT toDateTime(ts, 'UTC') AS t, service, if({BYCUM}, cum, flat) AS v
    FROM function_values
    WHERE {PT} AND {ST} AND {FN}
      AND {WINDOW}
      AND ($__interval_s % 3600 != 0 OR ts < {H_FROM} OR ts >= {H_TO})
      AND {SVC}
)
GROUP BY time, service
ORDER BY time, service
"""

SQL_SERVICES = f"""
-- Services spending most in the function (sql/queries/services_for_function.sql): its flat and
-- cum per service, and cum as a share of each service's own total for the sample type.
SELECT f.service AS service, f.flat AS flat, f.cum AS cum, t.total AS service_total,
       if(t.total = 0, 0, f.cum / t.total) AS cum_share
FROM
(
    SELECT service, sum(flat) AS flat, sum(cum) AS cum
    FROM function_values
    WHERE {PT} AND {ST}
      AND {FN}
      AND {WINDOW}
    GROUP BY service
) AS f
LEFT JOIN
(
    SELECT service, sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})]) AS total
    FROM profiles FINAL
    WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}})
      AND {WINDOW}
    GROUP BY service
) AS t USING service
ORDER BY cum DESC, service
LIMIT {LIMIT}
"""

SQL_FLAME = f"""
-- Flame graph (sql/queries/flamegraph.sql): Grafana's nested-set form (level, value, self,
-- label), depth-first; every stack prefix root->leaf is a node under one `total` root.
WITH
    picked AS
    (
        SELECT stack_hash, sum(value) AS v
        FROM stack_values
        WHERE {PT} AND {ST}
          AND {WINDOW}
          AND {SVC}
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
"""

LK = "labels[${label_key:sqlstring}]"
SQL_DIFF = f"""
-- What changed between two label selections over the window (sql/queries/diff.sql), e.g.
-- version=1.2 (A) vs version=1.3 (B): flat (or cum) per function, absolute and relative change,
-- and each side's share of its own total (fair when A and B ran on different numbers of pods).
WITH
    (
        SELECT sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})])
        FROM profiles FINAL
        WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}})
          AND {WINDOW} AND {SVC}
          AND {LK} = ${{label_a:sqlstring}}
    ) AS total_a,
    (
        SELECT sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})])
        FROM profiles FINAL
        WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}})
          AND {WINDOW} AND {SVC}
          AND {LK} = ${{label_b:sqlstring}}
    ) AS total_b
SELECT function, sumIf(v, in_a) AS a, sumIf(v, in_b) AS b, b - a AS delta,
       if(a = 0, NULL, (b - a) / abs(a)) AS relative,
       if(total_a = 0, NULL, a / total_a) AS a_share,
       if(total_b = 0, NULL, b / total_b) AS b_share
FROM
(
    SELECT function, if({BYCUM}, cum, flat) AS v,
           {LK} = ${{label_a:sqlstring}} AS in_a,
           {LK} = ${{label_b:sqlstring}} AS in_b
    FROM function_values
    WHERE {PT} AND {ST}
      AND {WINDOW}
      AND {SVC}
      AND {LK} IN (${{label_a:sqlstring}}, ${{label_b:sqlstring}})
)
WHERE in_a OR in_b
GROUP BY function
HAVING a != 0 OR b != 0
ORDER BY abs(delta) DESC, function
LIMIT {LIMIT}
"""

PREV = ("ts >= $__fromTime - toIntervalSecond(dateDiff('second', $__fromTime, $__toTime)) "
        "AND ts < $__fromTime")
SQL_MOVERS = f"""
-- Movers (`pprofhouse report`'s test, see the README): each function's share of the sample
-- type's total in the dashboard's range against the previous range of the same length. The
-- counts of the two-proportion z-test are the shares applied to the profiles' sample counts
-- (profiles.sample_count); p = erfc(|z|/sqrt 2); q = Benjamini-Hochberg over every function;
-- significant = q <= 0.05, |change| >= 0.1 points and >= 5 % of the share. Largest change first.
WITH
    (SELECT sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})]) FROM profiles FINAL
     WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}}) AND {WINDOW} AND {SVC}) AS total_now,
    (SELECT sum(sample_count) FROM profiles FINAL
     WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}}) AND {WINDOW} AND {SVC}) AS n_now,
    (SELECT sum(totals[indexOf(sample_types, ${{sample_type:sqlstring}})]) FROM profiles FINAL
     WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}}) AND {PREV} AND {SVC}) AS total_prev,
    (SELECT sum(sample_count) FROM profiles FINAL
     WHERE {PT} AND has(sample_types, ${{sample_type:sqlstring}}) AND {PREV} AND {SVC}) AS n_prev
SELECT function, value, prev_value, share, prev_share, share_points, ratio, z, q,
       q <= 0.05 AND abs(share_points) >= 0.1 AND (ratio IS NULL OR abs(ratio - 1) >= 0.05) AS significant
FROM
(
    SELECT *, least(1, min(p * m / rank) OVER (ORDER BY p DESC, function DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS q
    FROM
    (
        SELECT *, row_number() OVER (ORDER BY p ASC, function ASC) AS rank, count() OVER () AS m
        FROM
        (
            SELECT function, value, prev_value,
                   if(total_now = 0, 0, value / total_now) AS share,
                   if(total_prev = 0, 0, prev_value / total_prev) AS prev_share,
                   (share - prev_share) * 100 AS share_points,
                   if(prev_share = 0, NULL, share / prev_share) AS ratio,
                   round(share * n_now) AS k_now, round(prev_share * n_prev) AS k_prev,
                   if(n_now + n_prev = 0, 0, (k_now + k_prev) / (n_now + n_prev)) AS pooled,
                   if(n_now = 0 OR n_prev = 0 OR pooled <= 0 OR pooled >= 1, 0,
                      (k_now / n_now - k_prev / n_prev) / sqrt(pooled * (1 - pooled) * (1 / n_now + 1 / n_prev))) AS z,
                   erfc(abs(z) / sqrt(2)) AS p
            FROM
            (
                SELECT function, sumIf(v, in_now) AS value, sumIf(v, NOT in_now) AS prev_value
                FROM
                (
                    SELECT function, if({BYCUM}, cum, flat) AS v, {WINDOW} AS in_now
                    FROM function_values
                    WHERE {PT} AND {ST}
                      AND (({WINDOW}) OR ({PREV}))
                      AND {SVC}
                )
                GROUP BY function
                HAVING value != 0 OR prev_value != 0
            )
        )
    )
)
ORDER BY significant DESC, abs(share_points) DESC, function
LIMIT {LIMIT}
"""

# ---------------------------------------------------------------------------------------------
# Variables

def ds_var(name, label, plugin, default_uid, default_text):
    return {"type": "datasource", "name": name, "label": label, "query": plugin, "regex": "",
            "hide": 0, "refresh": 1, "includeAll": False, "multi": False, "options": [],
            "current": {"selected": False, "text": default_text, "value": default_uid}}

def query_var(name, label, sql, include_all=False, all_value=None, description=""):
    v = {"type": "query", "name": name, "label": label, "description": description,
         "datasource": CH, "definition": sql, "query": sql, "refresh": 2, "sort": 0,
         "regex": "", "hide": 0, "includeAll": include_all, "multi": False,
         "options": [], "current": {}}
    if include_all:
        v["allValue"] = all_value
        v["current"] = {"selected": True, "text": "All", "value": "$__all"}
    return v

def custom_var(name, label, values, default, description=""):
    opts = [{"selected": x == default, "text": x, "value": x} for x in values]
    return {"type": "custom", "name": name, "label": label, "description": description,
            "query": ",".join(values), "hide": 0, "includeAll": False, "multi": False,
            "options": opts, "current": {"selected": True, "text": default, "value": default}}

variables = [
    ds_var("clickhouse", "ClickHouse", "grafana-clickhouse-datasource", "clickhouse", "ClickHouse"),
    ds_var("prometheus", "Prometheus", "prometheus", "prometheus", "Prometheus"),
    query_var("profile_type", "profile type",
              f"SELECT DISTINCT profile_type FROM profiles WHERE {WINDOW} ORDER BY profile_type",
              description="Profile type (cpu, heap, ...)."),
    query_var("sample_type", "sample type",
              "SELECT st FROM profiles ARRAY JOIN sample_types AS st "
              f"WHERE {PT} AND {WINDOW} "
              "GROUP BY st ORDER BY countIf(st = default_sample_type) DESC, st",
              description="type/unit; the profiles' default sample type comes first."),
    query_var("service", "service",
              f"SELECT DISTINCT service FROM profiles WHERE {PT} AND {WINDOW} ORDER BY service",
              include_all=True, all_value="''",
              description="All = the whole fleet (the queries' service = '' convention)."),
    query_var("function", "function",
              "SELECT function FROM function_values_hourly "
              f"WHERE {PT} AND {ST} "
              "AND bucket >= toStartOfHour(toDateTime($__fromTime, 'UTC')) AND bucket < $__toTime "
              f"AND {SVC} "
              "GROUP BY function ORDER BY sum(cum) DESC, function LIMIT 1000",
              description="The heaviest 1000 functions by cum in the window (click one in the top table)."),
    custom_var("order", "order by", ["flat", "cum"], "flat",
               description="Rank and plot flat (self) or cum (self + callees)."),
    custom_var("limit", "top N", ["10", "20", "50", "100"], "20"),
    query_var("label_key", "diff: label",
              f"SELECT DISTINCT arrayJoin(label_keys) AS k FROM profiles WHERE {PT} AND {WINDOW} ORDER BY k",
              description="Label whose two values the diff compares (e.g. version)."),
    query_var("label_a", "A",
              f"SELECT DISTINCT {LK} AS v FROM profiles "
              f"WHERE {PT} AND has(label_keys, ${{label_key:sqlstring}}) AND {WINDOW} ORDER BY v",
              description="Baseline value of the diff label."),
    query_var("label_b", "B",
              f"SELECT DISTINCT {LK} AS v FROM profiles "
              f"WHERE {PT} AND has(label_keys, ${{label_key:sqlstring}}) AND {WINDOW} ORDER BY v DESC",
              description="Compared value of the diff label (newest first)."),
]

# ---------------------------------------------------------------------------------------------
# Panels

def unit_override(names, unit, extra=None):
    props = [{"id": "unit", "value": unit}]
    if extra:
        props += extra
    return {"matcher": {"id": "byRegexp", "options": "^(" + "|".join(names) + ")$"}, "properties": props}

def rename(name, display):
    return {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "displayName", "value": display}]}

GAUGE_CELL = {"id": "custom.cellOptions", "value": {"type": "gauge", "mode": "basic", "valueDisplayMode": "text"}}
SHARE_RANGE = [{"id": "min", "value": 0}, {"id": "max", "value": 1}, {"id": "decimals", "value": 2}]

def table_panel(title, gp, sql, overrides, sort_by=None, description="", links_on=None):
    p = {"type": "table", "id": nid(), "title": title, "description": description, "gridPos": gp,
         "datasource": CH, "targets": [ch_target(sql)],
         "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                                 "filterable": True},
                                      "unit": "short", "decimals": 0},
                         "overrides": overrides},
         "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}}
    if sort_by:
        p["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return p

panels = []
y = 0
panels.append(row("Fleet: $profile_type · $sample_type · service $service", y)); y += 1

stats = {"type": "stat", "id": nid(), "title": "Profiles in window", "gridPos": pos(0, y, 24, 3),
         "datasource": CH, "targets": [ch_target(SQL_STATS)],
         "description": "Ingested profiles of this type (and service) whose timestamp is in the window, and the latest arrival.",
         "fieldConfig": {"defaults": {"unit": "short", "decimals": 0, "color": {"mode": "fixed", "fixedColor": "blue"}},
                         "overrides": [{"matcher": {"id": "byName", "options": "last_ingested"},
                                        "properties": [{"id": "unit", "value": "dateTimeFromNow"},
                                                       {"id": "displayName", "value": "last ingested"}]}]},
         "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "none", "graphMode": "none", "justifyMode": "auto", "textMode": "value_and_name",
                     "orientation": "vertical"}}
panels.append(stats); y += 3

link_fn = {"title": "Show ${__value.text} over time",
           "url": "/d/${__dashboard.uid}?${__url_time_range}&${clickhouse:queryparam}&${prometheus:queryparam}"
                  "&${profile_type:queryparam}&${sample_type:queryparam}&${service:queryparam}&${order:queryparam}"
                  "&${limit:queryparam}&${label_key:queryparam}&${label_a:queryparam}&${label_b:queryparam}"
                  "&var-function=${__value.raw:percentencode}"}
top = table_panel(
    "Top $limit functions by $order", pos(0, y, 24, 13), SQL_TOP,
    [rename("flat_share", "flat %"), rename("cum_share", "cum %"),
     unit_override(["flat_share", "cum_share"], "percentunit", SHARE_RANGE + [GAUGE_CELL]),
     {"matcher": {"id": "byName", "options": "function"},
      "properties": [{"id": "links", "value": [link_fn]}, {"id": "custom.width", "value": 720}]}],
    description="Like `pprofhouse top` / `go tool pprof -top` over every profile of the window. "
                "Click a function to select it below.")
panels.append(top); y += 13

movers = table_panel(
    "Movers: share of $order against the previous range of the same length", pos(0, y, 24, 10), SQL_MOVERS,
    [rename("prev_value", "previous"), rename("prev_share", "previous %"), rename("share", "share %"),
     rename("share_points", "change (points)"),
     unit_override(["share", "prev_share"], "percentunit", [{"id": "decimals", "value": 2}]),
     unit_override(["share_points", "ratio", "z"], "none", [{"id": "decimals", "value": 2}]),
     unit_override(["q"], "none", [{"id": "decimals", "value": 4}]),
     {"matcher": {"id": "byName", "options": "function"},
      "properties": [{"id": "links", "value": [link_fn]}, {"id": "custom.width", "value": 520}]}],
    description="The functions whose share changed most, with the report's significance: two-proportion "
                "z-test on sample counts, Benjamini-Hochberg q over every function, significant = q <= 0.05 "
                "and a change of at least 0.1 points and 5 % (see `pprofhouse report`).")
panels.append(movers); y += 10

panels.append(row("Function: $function", y)); y += 1
ts = {"type": "timeseries", "id": nid(), "title": "$function — $order per service (sum per $__interval)",
      "gridPos": pos(0, y, 15, 11), "datasource": CH, "interval": "1m", "maxDataPoints": 300,
      "targets": [ch_target(SQL_TS, "timeseries")],
      "transformations": [{"id": "prepareTimeSeries", "options": {"format": "multi"}}],
      "description": "Sum of the function's flat or cum over the profiles in each interval, per service.",
      "fieldConfig": {"defaults": {"unit": "short", "displayName": "${__field.labels.service}",
                                   "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                              "showPoints": "never", "spanNulls": False,
                                              "stacking": {"mode": "none", "group": "A"}}},
                      "overrides": []},
      "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["sum", "max"], "showLegend": True},
                  "tooltip": {"mode": "multi", "sort": "desc"}}}
panels.append(ts)
svc = table_panel(
    "Services spending most in $function", pos(15, y, 9, 11), SQL_SERVICES,
    [rename("cum_share", "share of service"), rename("service_total", "service total"),
     unit_override(["cum_share"], "percentunit", SHARE_RANGE + [GAUGE_CELL])],
    description="cum (and flat) of the function per service, and cum as a share of that service's own total.")
panels.append(svc); y += 11

panels.append(row("Flame graph", y)); y += 1
flame = {"type": "flamegraph", "id": nid(), "title": "Flame graph — $profile_type · $sample_type · service $service",
         "gridPos": pos(0, y, 24, 18), "datasource": CH, "targets": [ch_target(SQL_FLAME)],
         "description": "Every stack of the window merged (stack_values + stacks); needs PPROFHOUSE_STORE_STACKS=true.",
         "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
         "options": {}}
panels.append(flame); y += 18

panels.append(row("Diff: $label_key = $label_a (A) vs $label_b (B)", y)); y += 1
diff = table_panel(
    "Largest changes of $order: $label_key $label_a → $label_b", pos(0, y, 24, 12), SQL_DIFF,
    [rename("a", "A ($label_a)"), rename("b", "B ($label_b)"),
     rename("a_share", "A % of total"), rename("b_share", "B % of total"),
     unit_override(["relative"], "percentunit", [{"id": "decimals", "value": 1},
                                                 {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                                                 {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                                     {"color": "green", "value": None},
                                                     {"color": "text", "value": 0},
                                                     {"color": "red", "value": 0.0001}]}}]),
     unit_override(["a_share", "b_share"], "percentunit", [{"id": "decimals", "value": 2}])],
    description="Same window, two values of one label (e.g. version=1.2 vs 1.3). relative is empty when A is 0.")
panels.append(diff); y += 12

# Worker health (Prometheus; metrics of `pprofhouse worker`, prefix pprofhouse_worker_).
def prom_ts(title, gp, targets, unit, description="", stack=False):
    return {"type": "timeseries", "id": nid(), "title": title, "description": description, "gridPos": gp,
            "datasource": PROM, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit,
                                         "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 30,
                                                    "showPoints": "never",
                                                    "stacking": {"mode": "normal" if stack else "none", "group": "A"}}},
                            "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}

def quantiles(metric, qs=(0.5, 0.95, 0.99)):
    return [prom_target(f"histogram_quantile({q}, sum by (le) (rate(pprofhouse_worker_{metric}_bucket[$__rate_interval])))",
                        f"p{int(q * 100)}", chr(ord('A') + i)) for i, q in enumerate(qs)]

health = []
hy = y + 1
health.append(prom_ts("Messages / s by outcome", pos(0, hy, 8, 8),
                      [prom_target("sum by (outcome) (rate(pprofhouse_worker_messages_total[$__rate_interval]))", "{{outcome}}")],
                      "ops", "ok: stored; dead_letter: sent to the DLQ topic; skipped: not a profile event.", stack=True))
health.append(prom_ts("Profiles and function rows / s", pos(8, hy, 8, 8),
                      [prom_target("sum(rate(pprofhouse_worker_profiles_total[$__rate_interval]))", "profiles", "A"),
                       prom_target("sum(rate(pprofhouse_worker_function_rows_total[$__rate_interval]))", "function rows", "B")],
                      "ops"))
health.append(prom_ts("Fetched from S3", pos(16, hy, 8, 8),
                      [prom_target("sum(rate(pprofhouse_worker_fetched_bytes_total[$__rate_interval]))", "bytes/s")],
                      "Bps"))
hy += 8
health.append(prom_ts("Errors / s by kind", pos(0, hy, 8, 8),
                      [prom_target("sum by (kind) (rate(pprofhouse_worker_errors_total[$__rate_interval]))", "{{kind}}")],
                      "ops", stack=True))
health.append(prom_ts("Consumer lag by partition", pos(8, hy, 8, 8),
                      [prom_target("max by (topic, partition) (pprofhouse_worker_consumer_lag)", "{{topic}} / {{partition}}")],
                      "short", "Messages behind the log end, per partition of the profiles topic. "
                               "Growing lag with busy workers: add partitions and replicas.", stack=True))
health.append(prom_ts("Event → visible in ClickHouse", pos(16, hy, 8, 8), quantiles("event_to_visible_seconds"), "s",
                      "From the S3 event time to the batch insert that made the profile queryable."))
hy += 8
health.append(prom_ts("Batch size (function rows)", pos(0, hy, 12, 8), quantiles("batch_rows", (0.5, 0.95)), "short",
                      "Rows per ClickHouse insert; PPROFHOUSE_BATCH_ROWS / _BATCH_BYTES / _BATCH_LINGER bound it."))
health.append(prom_ts("Flush duration", pos(12, hy, 12, 8), quantiles("flush_seconds"), "s",
                      "Latency of one batch write (INSERT INTO ingest, whose views fan it out, then the rollups and the markers)."))
panels.append(row("Worker health (Prometheus)", y, collapsed=False)); panels.extend(health)

dashboard = {
    "uid": "pprofhouse",
    "title": "pprofhouse",
    "description": "pprof profiles as time series in ClickHouse: fleet top-N, one function over time, "
                   "services, flame graph, diffs, and the workers' health.",
    "tags": ["pprofhouse", "profiling", "clickhouse"],
    "timezone": "utc",
    "editable": True,
    "graphTooltip": 1,
    "fiscalYearStartMonth": 0,
    "liveNow": False,
    "refresh": "",
    "schemaVersion": 39,
    "version": 1,
    "time": {"from": "now-24h", "to": "now"},
    "timepicker": {"refresh_intervals": ["1m", "5m", "15m", "1h"]},
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                              "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                              "name": "Annotations & Alerts", "type": "dashboard"}]},
    "links": [],
    "templating": {"list": variables},
    "panels": panels,
}

def no_injection(text):
    """Every `${name:sqlstring}` becomes `decodeURLComponent('${name:percentencode}')`.

    Grafana's sqlstring doubles single quotes but leaves backslashes alone, and ClickHouse reads
    `\\'` inside a literal as an escaped quote: a value ending in a backslash would close the
    literal and let the rest of the value into the SQL. Percent-encoding leaves only
    [A-Za-z0-9-_.~%] between the quotes, which nothing can break out of.
    """
    return re.sub(r"\$\{(\w+):sqlstring\}", r"decodeURLComponent('${\1:percentencode}')", text)


if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent / "dashboards" / "pprofhouse.json"
    out.write_text(no_injection(json.dumps(dashboard, indent=2, ensure_ascii=False)) + "\n")
    print(f"wrote {out}")
