#!/usr/bin/env python3
"""Runs every ClickHouse query of dashboards/pprofhouse.json on the real engine.

    $PPROFHOUSE_CACHE/venv/bin/python infra/grafana/check_dashboard.py   # venv of infra/local (chdb-core)

It creates the schema from sql/migrations in a temporary chDB session, inserts a synthetic fleet
(3 services, cpu profiles every 10 minutes over 30 hours, label version=1.2 then 1.3, a function
name with a quote and a backslash), substitutes the Grafana variables the way Grafana does
(`decodeURLComponent('${name:percentencode}')`; All = '') and the plugin's macros ($__fromTime,
$__toTime, $__interval_s), runs each variable and panel query, and checks that the top-N and
time-series panels, which read the hourly rollup for whole hours and raw rows for the edges,
give exactly what the raw queries of sql/queries give.
"""
import json
import math
import pathlib
import re
import shutil
import tempfile
import time
import urllib.parse
import uuid

from chdb import session as chs

ROOT = pathlib.Path(__file__).resolve().parents[2]
ALL = object()  # the `service` variable's All


def main():
    tmp = tempfile.mkdtemp(prefix="pprofhouse-dashboard-")
    try:
        run(chs.Session(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(sess):
    def q(sql):
        return sess.query(sql, "TSV").bytes().decode()

    def rows(sql):
        return [line.split("\t") for line in q(sql).splitlines()]

    create_schema(q)
    now = int(time.time())
    insert_fleet(q, now)

    dash = json.loads((ROOT / "infra/grafana/dashboards/pprofhouse.json").read_text())
    frm, to = now - 26 * 3600 - 1234, now - 77  # partial hours at both edges
    base = {"profile_type": "cpu", "sample_type": "cpu/nanoseconds", "service": ALL,
            "function": "main.work", "order": "flat", "limit": "20", "label_key": "version",
            "label_a": "1.2", "label_b": "1.3"}

    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            got = rows(render(v["query"], frm, to, 60, base))
            assert got, f"variable {v['name']} is empty"
            print(f"variable {v['name']}: {[r[0] for r in got[:4]]}")

    panels = [p for p in dash["panels"] if p.get("datasource", {}).get("type") == "grafana-clickhouse-datasource"]
    for p in panels:
        for t in p["targets"]:
            for svc in (ALL, "api"):
                for interval in (60, 3600):
                    for fn in ("main.work", "main.it's\\path"):
                        got = rows(render(t["rawSql"], frm, to, interval, dict(base, service=svc, function=fn)))
                        assert got, f"{p['title']}: no rows"
            print(f"panel {p['title']!r}: ok")

    # Hostile values are values: a service name that tries to end the literal selects nothing.
    top = next(p for p in panels if p["type"] == "table" and p["title"].startswith("Top"))
    for evil in ("x\\' OR 1=1 --", "\\", "'; DROP TABLE profiles; --"):
        got = rows(render(top["targets"][0]["rawSql"], frm, to, 60, dict(base, service=evil)))
        assert got == [], (evil, got[:3])
        for p in panels:
            for t in p["targets"]:
                q(render(t["rawSql"], frm, to, 60, dict(base, function=evil, label_a=evil)))  # runs, no error
    print("hostile variable values select nothing: ok")

    # Top-N: hourly rollup + raw edges == sql/queries/top_functions.sql on raw rows.
    raw = (ROOT / "sql/queries/top_functions.sql").read_text()
    for k, v in {"{profile_type:String}": "'cpu'", "{sample_type:String}": "'cpu/nanoseconds'",
                 "{from:DateTime64(3)}": f"toDateTime({frm})", "{to:DateTime64(3)}": f"toDateTime({to})",
                 "{service:String}": "''", "{label_keys:Array(String)}": "CAST([] AS Array(String))",
                 "{label_values:Array(String)}": "CAST([] AS Array(String))", "{by_cum:UInt8}": "0",
                 "{limit:UInt32}": "20"}.items():
        raw = raw.replace(k, v)
    top = next(p for p in panels if p["type"] == "table" and p["title"].startswith("Top"))
    hybrid = [[r[0], r[1], r[3]] for r in rows(render(top["targets"][0]["rawSql"], frm, to, 60, base))]
    assert hybrid == [r[:3] for r in rows(raw)], (hybrid, rows(raw))

    # Time series with a whole-hour step: rollup + raw edges == raw rows only.
    ts = next(p for p in panels if p["type"] == "timeseries")
    sql = render(ts["targets"][0]["rawSql"], frm, to, 7200, base)
    raw_only = sql.replace("WHERE 7200 % 3600 = 0", "WHERE 0").replace("(7200 % 3600 != 0 OR", "(1 OR")
    assert sql != raw_only and q(sql) == q(raw_only)
    print("rollup-backed panels equal the raw queries: ok")

    # Movers: the panel's z, q and flag are the report's math recomputed here from its values.
    movers = next(p for p in panels if p["title"].startswith("Movers"))
    got = rows(render(movers["targets"][0]["rawSql"], frm, to, 60, dict(base, limit="1000")))
    prev = f"ts >= toDateTime({2 * frm - to}) AND ts < toDateTime({frm})"
    now_w = f"ts >= toDateTime({frm}) AND ts < toDateTime({to})"
    tot = lambda w: [float(x) for x in rows(
        "SELECT sum(totals[indexOf(sample_types, 'cpu/nanoseconds')]), sum(sample_count) FROM profiles FINAL "
        f"WHERE profile_type = 'cpu' AND {w}")[0]]
    (t_now, n_now), (t_prev, n_prev) = tot(now_w), tot(prev)
    assert n_prev > 0 and n_now > 0 and len(got) >= 3, (n_now, n_prev, got)
    ps = []
    for r in got:
        v, pv = float(r[1]), float(r[2])
        s_now, s_prev = v / t_now, pv / t_prev
        k1, k0 = round(s_now * n_now), round(s_prev * n_prev)
        pooled = (k1 + k0) / (n_now + n_prev)
        z = 0.0 if pooled <= 0 or pooled >= 1 else (k1 / n_now - k0 / n_prev) / math.sqrt(pooled * (1 - pooled) * (1 / n_now + 1 / n_prev))
        assert abs(float(r[7]) - z) < 1e-6, (r, z)
        ps.append((math.erfc(abs(z) / math.sqrt(2)), r[0]))
    order = sorted(ps)
    m, running, want_q = len(order), 1.0, {}
    for rank in range(m, 0, -1):
        p, fn = order[rank - 1]
        running = min(running, p * m / rank)
        want_q[fn] = min(1.0, running)
    for r in got:
        assert abs(float(r[8]) - want_q[r[0]]) < 1e-9, (r, want_q[r[0]])
    print("movers panel is the report's test: ok")


def render(sql, frm, to, interval_s, values):
    def var(m):
        name, fmt = m.group(1), m.group(2)
        # Only percent-encoded values inside quotes: nothing in them can end the literal.
        assert fmt == "percentencode", m.group(0)
        value = values[name]
        # Grafana's percentencode is encodeURIComponent plus !'()*: only A-Za-z0-9-_.~ stay.
        return "" if value is ALL else urllib.parse.quote(value, safe="-_.~")

    sql = re.sub(r"\$\{(\w+):(\w+)\}", var, sql)
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    return sql.replace("$__interval_s", str(interval_s))


def create_schema(q):
    q("CREATE DATABASE IF NOT EXISTS pprofhouse")
    subs = {"{db}": "pprofhouse", "{local}": "", "{on_cluster}": "", "{replacing}": "ReplacingMergeTree",
            "{merge_tree}": "MergeTree", "{summing}": "SummingMergeTree", "{ttl_profiles_days}": "90",
            "{ttl_raw_days}": "30", "{ttl_hourly_days}": "180", "{ttl_daily_days}": "730"}
    # As sql/src/schema renders them: statements end with ";\n"; one marked cluster-only is
    # for a cluster and skipped here.
    for f in sorted((ROOT / "sql/migrations").glob("*.sql")):
        for stmt in f.read_text().split(";\n"):
            if "-- cluster-only" in stmt:
                continue
            stmt = "\n".join(l for l in stmt.splitlines() if not l.lstrip().startswith("--")).strip().rstrip(";")
            for k, v in subs.items():
                stmt = stmt.replace(k, v)
            if stmt:
                q(stmt)
    q("USE pprofhouse")


def insert_fleet(q, now):
    """The fleet as the worker writes it: the data through `ingest`, the rollups (the batch's
    sums by key, one insert each), then each profile's processed marker in `profiles`."""
    start = now - 30 * 3600
    markers, data = [], []
    for i, t in enumerate(range(start, now, 600)):
        for si, svc in enumerate(["api", "checkout", "search"]):
            ver = "1.2" if t - start < 15 * 3600 else "1.3"
            f1, f2, f3 = 100 + si * 10 + i % 7, 50 + i % 5, 5
            total = f1 + f2 + f3
            odd = "'main.it''s\\\\path'"  # main.it's\path
            markers.append(
                f"toUUID('{uuid.UUID(int=i * 3 + si + 1)}'), fromUnixTimestamp64Milli({t * 1000 + si}), '{svc}', 'cpu',"
                f" map('version', '{ver}'), 10000000000, 'cpu/nanoseconds', 10000000,"
                f" ['samples/count', 'cpu/nanoseconds'], [{total // 5}, {total}], 'cpu/nanoseconds', 10, ['version'],"
                f" 'profiles', 'k{i}-{si}', 'e', 100, 1000")
            data.append(
                f"[1, 1, 1, 1], ['main.work', 'runtime.mallocgc', {odd}, 'main.main'], [{f1}, {f2}, {f3}, 0],"
                f" [{f1 + f2}, {f2}, {f3}, {total}],"
                # stacks 1, 2, 3 by sample type, then their frames (the worker's layout, 0010)
                f" [[1, 2, 3], [1, 2, 3]], [[{f1 // 5}, {f2 // 5}, {f3 // 5}], [{f1}, {f2}, {f3}]], [1, 2, 3],"
                f" [['main.work', 'main.main'], ['runtime.mallocgc', 'main.work', 'main.main'], [{odd}, 'main.main']]")
    head = ("profile_id, ts, service, profile_type, labels, duration_ns, period_type, period, sample_types, totals,"
            " default_sample_type, sample_count, label_keys, source_bucket, source_key, source_etag, source_size,"
            " decoded_bytes")
    q(f"INSERT INTO ingest ({head}, fn_type, fn_name, fn_flat, fn_cum, by_type_hash, by_type_value, frames_hash,"
      " frames) VALUES " + ", ".join(f"({m}, {d})" for m, d in zip(markers, data)))
    for table, bucket in (("function_values_hourly", "toStartOfHour(ts)"), ("function_values_daily", "toDate(ts)")):
        q(f"INSERT INTO {table} SELECT {bucket} AS bucket, service, profile_type, sample_type, function,"
          " sum(flat), sum(cum), count() FROM function_values GROUP BY ALL")
    q(f"INSERT INTO profiles ({head}) VALUES " + ", ".join(f"({m})" for m in markers))


if __name__ == "__main__":
    main()
    print("dashboard queries: all ok")
