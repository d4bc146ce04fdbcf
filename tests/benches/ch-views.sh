#!/usr/bin/env bash
# What each table and view costs ClickHouse per profile, without the rest of the pipeline's noise.
#   1. The pipeline benchmark's backlog phase runs once with a copy of every `ingest` row the
#      worker sends (a view into `ingest_capture`); the rows are then held in a Memory table.
#   2. For each variant below (the schema as migrated, then without one view at a time), a fresh
#      database is migrated and the captured rows are inserted into its `ingest` 20 times, a
#      twentieth of the profiles each, with the worker's insert settings; the local ClickHouse's
#      CPU is read before, after the inserts, and after its merges have finished.
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
    BENCH_SQL="CREATE TABLE ingest_capture AS ingest ENGINE = MergeTree ORDER BY tuple();CREATE MATERIALIZED VIEW ingest_capture_mv TO ingest_capture AS SELECT * FROM ingest" \
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
q pprofhouse_bench "DROP TABLE IF EXISTS captured" >/dev/null
q pprofhouse_bench "CREATE TABLE captured ENGINE = Memory AS SELECT * FROM ingest_capture" >/dev/null
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
replay() { # name, statements after the migrations (`;`-separated)
    local db=pprofhouse_views c0 c1 i s stmts
    q default "DROP DATABASE IF EXISTS $db" >/dev/null
    PPROFHOUSE_CLICKHOUSE_DATABASE=$db "$bin" migrate >/dev/null
    if [[ -n $2 ]]; then
        IFS=";" read -ra stmts <<<"$2"
        for s in "${stmts[@]}"; do q "$db" "$s" >/dev/null; done
    fi
    c0=$(cpu)
    for ((i = 0; i < chunks; i++)); do
        q "$db" "INSERT INTO ingest SETTINGS insert_deduplication_token = 'views-$i', deduplicate_blocks_in_dependent_materialized_views = 1, optimize_on_insert = 0 SELECT * FROM pprofhouse_bench.captured $(part "$i")" >/dev/null
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
variants=(
    "as migrated|"
    "without the hourly rollup|DROP VIEW function_values_hourly_mv"
    "without the daily rollup|DROP VIEW function_values_daily_mv"
    "without function_values and rollups|DROP VIEW ingest_function_values_mv"
    "without stack_samples|DROP VIEW ingest_stack_samples_by_type_mv"
    "without stacks (frames)|DROP VIEW ingest_stack_frames_mv"
    "without the views before migration 0010|DROP VIEW ingest_stacks_mv;DROP VIEW ingest_stack_samples_mv"
)
echo "ClickHouse CPU per profile, $profiles profiles replayed in $chunks inserts (reading them alone: $(read_cost) ms/profile)"
for ((r = 1; r <= rounds; r++)); do
    echo "round $r"
    for v in "${variants[@]}"; do replay "${v%%|*}" "${v#*|}"; done
done
q pprofhouse_bench "DROP TABLE captured" >/dev/null
