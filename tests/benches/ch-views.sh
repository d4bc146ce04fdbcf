#!/usr/bin/env bash
# What each table and view costs ClickHouse per profile, without the rest of the pipeline's noise.
#   1. The pipeline benchmark's backlog phase runs once with a copy of every `ingest` row and
#      every rollup row the worker sends (views into `*_capture` tables); the rows are then held
#      in Memory tables.
#   2. For each variant below (the schema as migrated, then without one view or one rollup at a
#      time), a fresh database is migrated and the captured rows are inserted 20 times, a
#      twentieth each (`ingest`, then the rollups), with the worker's insert settings; the local
#      ClickHouse's CPU is read before, after the inserts, and after its merges have finished.
#   Prints ClickHouse CPU ms per profile for each variant and round: a view costs the difference
#   from "as migrated". Reading the captured rows alone is printed too (it is in every figure).
# Usage: tests/benches/ch-views.sh [ROUNDS=2]   (PROFILES_DIR as for pipeline.sh; PPROFHOUSE_BIN
#   or `make release`'s binary; BENCH_VIEWS_REUSE=1 replays the rows of the previous capture)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-2}
bin=${PPROFHOUSE_BIN:-$(make -s -C "$root" release-path)}
export PPROFHOUSE_BIN=$bin
if [[ -z ${BENCH_VIEWS_REUSE:-} ]]; then
    capture=""
    for t in ingest function_values_hourly function_values_daily; do
        capture+="CREATE TABLE ${t}_capture AS $t ENGINE = MergeTree ORDER BY tuple();CREATE MATERIALIZED VIEW ${t}_capture_mv TO ${t}_capture AS SELECT * FROM $t;"
    done
    BENCH_SQL=${capture%;} \
        PHASES=backlog "$root/tests/benches/pipeline.sh" "${BENCH_BATCHES:-20}"
else
    "$root/infra/local/up" all >/dev/null
fi
# shellcheck disable=SC1091
. "$root/infra/local/env"
# shellcheck disable=SC1091
. "$root/infra/local/lib.sh"
url=$PPROFHOUSE_CLICKHOUSE_URL
q() { curl -fsS "$url/?database=$1" --data-binary "$2"; }
rollups=(function_values_hourly function_values_daily)
for t in captured "${rollups[@]/%/_captured}"; do q pprofhouse_bench "DROP TABLE IF EXISTS $t" >/dev/null; done
q pprofhouse_bench "CREATE TABLE captured ENGINE = Memory AS SELECT * FROM ingest_capture" >/dev/null
for t in "${rollups[@]}"; do q pprofhouse_bench "CREATE TABLE ${t}_captured ENGINE = Memory AS SELECT * FROM ${t}_capture" >/dev/null; done
profiles=$(q pprofhouse_bench "SELECT uniqExact(profile_id) FROM captured")
cpu() { cpu_of clickhouse; }
per_profile() { echo "($2 - $1) * 1000 / $profiles" | bc -l | xargs printf '%.2f'; }
chunks=20
part() { echo "WHERE cityHash64(profile_id) % $chunks = $1"; }
read_cost() {
    local c0 i
    c0=$(cpu)
    for ((i = 0; i < chunks; i++)); do
        q pprofhouse_bench "SELECT * FROM captured $(part "$i") FORMAT Null" >/dev/null
    done
    per_profile "$c0" "$(cpu)"
}
replay() { # name, statements after the migrations (`;`-separated), rollup tables to insert
    local db=pprofhouse_views c0 c1 i s t stmts
    q default "DROP DATABASE IF EXISTS $db" >/dev/null
    PPROFHOUSE_CLICKHOUSE_DATABASE=$db "$bin" migrate >/dev/null
    if [[ -n $2 ]]; then
        IFS=";" read -ra stmts <<<"$2"
        for s in "${stmts[@]}"; do q "$db" "$s" >/dev/null; done
    fi
    c0=$(cpu)
    for ((i = 0; i < chunks; i++)); do
        q "$db" "INSERT INTO ingest SETTINGS insert_deduplication_token = 'views-$i', deduplicate_blocks_in_dependent_materialized_views = 1, optimize_on_insert = 0 SELECT * FROM pprofhouse_bench.captured $(part "$i")" >/dev/null
        for t in $3; do
            q "$db" "INSERT INTO $t SETTINGS insert_deduplication_token = 'views-$i/$t', optimize_on_insert = 0 SELECT * FROM pprofhouse_bench.${t}_captured WHERE cityHash64(service, function) % $chunks = $i" >/dev/null
        done
    done
    c1=$(cpu)
    # Its merges: waited for at most two minutes (a failed query counts as none left).
    local waited
    sleep 1
    for ((waited = 0; waited < 240; waited++)); do
        [[ $(q "$db" "SELECT count() FROM system.merges WHERE database = '$db'" || echo 0) != 0 ]] || break
        sleep 0.5
    done
    printf '  %-38s inserts %5s ms/profile, with their merges %5s\n' "$1" "$(per_profile "$c0" "$c1")" "$(per_profile "$c0" "$(cpu)")"
    q default "DROP DATABASE $db" >/dev/null
}
all_rollups="${rollups[*]}"
variants=(
    "as migrated||$all_rollups"
    "without the hourly rollup||function_values_daily"
    "without the daily rollup||function_values_hourly"
    "without the rollups||"
    "without function_values|DROP VIEW ingest_function_values_mv|$all_rollups"
    "without stack_samples|DROP VIEW ingest_stack_samples_by_type_mv|$all_rollups"
    "without stacks (frames)|DROP VIEW ingest_stack_frames_mv|$all_rollups"
    "without the views before migration 0010|DROP VIEW ingest_stacks_mv;DROP VIEW ingest_stack_samples_mv|$all_rollups"
)
echo "ClickHouse CPU per profile, $profiles profiles replayed in $chunks inserts (reading them alone: $(read_cost) ms/profile)"
for ((r = 1; r <= rounds; r++)); do
    echo "round $r"
    for v in "${variants[@]}"; do
        IFS="|" read -r name stmts tables <<<"$v"
        replay "$name" "$stmts" "$tables"
    done
done
for t in captured "${rollups[@]/%/_captured}"; do q pprofhouse_bench "DROP TABLE $t" >/dev/null; done
