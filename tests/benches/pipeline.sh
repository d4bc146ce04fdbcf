#!/usr/bin/env bash
# End-to-end pipeline benchmark on the local stack (make bench-pipeline):
#   live: a running worker; BATCHES × 100 real fixture profiles uploaded to S3 (profefe keys) and
#   their ObjectCreated events delivered through the ingest handler, batch after batch; prints
#   profiles/s end to end, event-to-visible latency p50/p99 (upload time → row inserted);
#   backlog: as many profiles enqueued first, then one worker drains them; prints profiles/s
#   (with and without the group join). Both print the worker's peak RSS.
# Usage: tests/benches/pipeline.sh [BATCHES=20]     (PPROFHOUSE_BIN or `make release`'s binary; starts the stack)
#   PROFILES_DIR=DIR: use every *.pb.gz there instead of the shared fixtures (e.g. production-size
#   profiles made with the Go workload or `go test -cpuprofile/-memprofile`); a batch is then
#   10 services × those files.
#   PHASES="live backlog" (default) or one of them.
#   BENCH_SERVICES=N: how many service names the batches cycle through (default 10; below).
#   BENCH_SQL="DROP VIEW ingest_stack_samples_mv": statements run after the migrations (the
#   cost of one view: run with and without it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
batches=${1:-20}
bin=${PPROFHOUSE_BIN:-$(make -s -C "$root" release-path)}
"$root/infra/local/up" all >/dev/null
# shellcheck disable=SC1091
. "$root/infra/local/env"
export PPROFHOUSE_CLICKHOUSE_DATABASE=pprofhouse_bench PPROFHOUSE_BATCH_LINGER=${PPROFHOUSE_BATCH_LINGER:-1s} PPROFHOUSE_LOG=${BENCH_WORKER_LOG:-error}
curl -fsS "$PPROFHOUSE_CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS pprofhouse_bench" >/dev/null
"$bin" migrate >/dev/null
# BENCH_SQL: statements (`;`-separated) run after the migrations, e.g. dropping one view to
# measure what it costs.
if [[ -n ${BENCH_SQL:-} ]]; then
    IFS=";" read -ra stmts <<<"$BENCH_SQL"
    for s in "${stmts[@]}"; do
        curl -fsS "$PPROFHOUSE_CLICKHOUSE_URL/?database=pprofhouse_bench" --data-binary "$s" >/dev/null
    done
fi
fx=$root/../shared/fixtures/pprof
files=()
if [[ -n ${PROFILES_DIR:-} ]]; then
    for f in "$PROFILES_DIR"/*.pb.gz; do files+=("$f"); done
else
    for f in go-workload-cpu go-cpu-labels go-workload-heap go-heap-2021 go-workload-allocs nodejs-cpu nodejs-heap go-workload-block go-mutex-2023 python-pyspy; do
        files+=("$fx/$f.pb.gz")
    done
fi
per_batch=$((10 * ${#files[@]}))
echo "profiles: ${#files[@]} files, $(du -cb "${files[@]}" | tail -n 1 | cut -f1) bytes compressed; $per_batch per batch"

# CPU seconds (user + system) each local component has used so far: the stack shares the cores
# with the worker, so the report splits each phase's CPU between them.
# shellcheck disable=SC1091
. "$root/infra/local/lib.sh"
cpu_snapshot() { echo "$(cpu_of clickhouse) $(cpu_of kafka) $(cpu_of s3)"; }
cpu_report() { # phase, snapshot before, profiles
    local ch0 k0 s0 ch1 k1 s1 wu ws w
    read -r ch0 k0 s0 <<<"$2"
    read -r ch1 k1 s1 <<<"$(cpu_snapshot)"
    wu=$(awk -F: '/User time/ {print $2}' "$work/time-$1.txt")
    ws=$(awk -F: '/System time/ {print $2}' "$work/time-$1.txt")
    w=$(echo "$wu + $ws" | bc -l)
    local s3what="uploads included"
    [[ $1 == live ]] || s3what="reads only"
    printf 'CPU per profile: worker %.1f ms, ClickHouse %.1f ms, Kafka %.1f ms, S3 %.1f ms (%s)\n' \
        "$(echo "$w * 1000 / $3" | bc -l)" "$(echo "($ch1 - $ch0) * 1000 / $3" | bc -l)" \
        "$(echo "($k1 - $k0) * 1000 / $3" | bc -l)" "$(echo "($s1 - $s0) * 1000 / $3" | bc -l)" "$s3what"
}

# Each run uploads into a bucket of its own, removed at exit with its objects' metadata files:
# the local S3 is a folder (infra/local/components/s3.sh), and a run's hundreds of megabytes
# would otherwise pile up there.
PPROFHOUSE_S3_BUCKET="bench-$(date +%s)-$$"
export PPROFHOUSE_S3_BUCKET
mkdir -p "$STATE_DIR/s3/$PPROFHOUSE_S3_BUCKET"
bucket_b64=$(printf %s "$PPROFHOUSE_S3_BUCKET" | base64 -w0 | tr '+/' '-_' | tr -d '=')
work=$(mktemp -d)
cleanup() {
    rm -rf "$work" "${STATE_DIR:?}/s3/$PPROFHOUSE_S3_BUCKET"
    find "$STATE_DIR/s3" -maxdepth 1 -name ".bucket-$bucket_b64.*" -delete
}
trap cleanup EXIT
q() { curl -fsS "$PPROFHOUSE_CLICKHOUSE_URL/?database=pprofhouse_bench" --data-binary "$1"; }
# Uploads batch $2 of phase $1: 10 services × the 10 fixtures = 100 distinct profiles, then
# delivers their events through the ingest handler. The services cycle through
# BENCH_SERVICES names (default 10: a fleet's services each send profiles all hour, so the
# hourly and daily rollups fold many profiles into one row; BENCH_SERVICES=10000 gives every
# batch new services, the rollups' worst case).
services=${BENCH_SERVICES:-10}
enqueue_batch() {
    for s in $(seq 10); do
        "$bin" put --service "$1-svc$(( ($2 * 10 + s) % services ))" --type cpu --event-out "$work/ev-$1-$2.json" "${files[@]}" >/dev/null
    done
    "$bin" ingest-event "$work/ev-$1-$2.json" >/dev/null
}
report() { # phase, worker start (unix s), enqueue end (unix s)
    [[ -z ${BENCH_KEEP_LOG:-} ]] || cp "$work/time-$1.txt" "$BENCH_KEEP_LOG-$1.log"
    local n rows first last p50 p99 rss
    n=$(q "SELECT count() FROM profiles FINAL WHERE service LIKE '$1-%'")
    rows=$(q "SELECT count() FROM function_values WHERE service LIKE '$1-%'")
    read -r first last p50 p99 < <(q "SELECT toUnixTimestamp64Milli(min(ts)), toUnixTimestamp64Milli(max(inserted_at)), quantileExact(0.5)(dateDiff('millisecond', ts, inserted_at)), quantileExact(0.99)(dateDiff('millisecond', ts, inserted_at)) FROM profiles FINAL WHERE service LIKE '$1-%' FORMAT TSV")
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$work/time-$1.txt")
    echo "== $1: profiles stored: $n of $((batches * per_batch)) ($rows function rows)"
    if [[ $1 == live ]]; then
        echo "enqueue (upload + event) rate: $(echo "$batches * $per_batch / ($3 - $2)" | bc -l | xargs printf '%.0f') profiles/s"
        echo "end to end: $(echo "$n * 1000 / ($last - $first)" | bc -l | xargs printf '%.0f') profiles/s (first upload → last row visible: $((last - first))ms)"
        echo "event-to-visible latency (upload second → row inserted; keys carry whole seconds): p50 ${p50} ms, p99 ${p99} ms"
    else
        local ms
        ms=$(echo "$last - $2 * 1000" | bc -l | xargs printf '%.0f')
        echo "backlog drain (worker start → last row visible, incl. group join): $(echo "$n * 1000 / $ms" | bc -l | xargs printf '%.0f') profiles/s ($n profiles in ${ms} ms)"
        local steady
        steady=$(q "SELECT dateDiff('millisecond', min(inserted_at), max(inserted_at)) FROM profiles FINAL WHERE service LIKE '$1-%'")
        echo "backlog drain, steady state (first batch stored → last): $(echo "$n * 1000 / $steady" | bc -l | xargs printf '%.0f') profiles/s"
    fi
    echo "worker peak RSS: $((rss / 1024)) MiB"
}

# Each phase gets its own topic (the local broker keeps earlier runs' messages).
tansu=${PPROFHOUSE_CACHE:-$HOME/.cache/pprofhouse}/tansu-0.6.0/bin/tansu
run_id=$(date +%s)
use_topic() {
    export PPROFHOUSE_KAFKA_TOPIC="pprofhouse.bench-$run_id-$1"
    "$tansu" topic create "$PPROFHOUSE_KAFKA_TOPIC" --partitions 4 --broker "tcp://${PPROFHOUSE_KAFKA_BROKERS#*://}" >/dev/null
}

phases=${PHASES:-live backlog}

# Phase 1, live: the worker runs while batches arrive one after another.
if [[ $phases == *live* ]]; then
use_topic live
cpu0=$(cpu_snapshot)
group="bench-live-$run_id"
/usr/bin/time -v "$bin" worker --until-idle 5s --group "$group" 2>"$work/time-live.txt" &
worker=$!
start=$(date +%s.%N)
for b in $(seq "$batches"); do enqueue_batch live "$b"; done
enq=$(date +%s.%N)
wait "$worker"
report live "$start" "$enq"
cpu_report live "$cpu0" "$((batches * per_batch))"
fi

# Phase 2, backlog: everything is enqueued first, then one worker drains it (worker throughput).
if [[ $phases == *backlog* ]]; then
use_topic backlog
for b in $(seq "$batches"); do enqueue_batch backlog "$b"; done
cpu0=$(cpu_snapshot) # the drain only: S3 serves reads, Kafka fetches
group="bench-backlog-$run_id"
start=$(date +%s.%N)
# (the worker's default linger: this phase measures throughput, not latency)
PPROFHOUSE_BATCH_LINGER=2s /usr/bin/time -v "$bin" worker --until-idle 3s --group "$group" 2>"$work/time-backlog.txt"
report backlog "$start"
cpu_report backlog "$cpu0" "$((batches * per_batch))"
fi
