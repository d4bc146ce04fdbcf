#!/usr/bin/env bash
# End-to-end pipeline benchmark on the local stack (make bench-pipeline):
#   a running worker; BATCHES × 100 real fixture profiles uploaded to S3 (profefe keys) and their
#   ObjectCreated events delivered through the ingest handler, batch after batch;
#   prints profiles/s end to end, event-to-visible latency p50/p99 (upload time → row inserted),
#   and the worker's peak RSS.
# Usage: tests/benches/pipeline.sh [BATCHES=20]     (needs a release build; starts the stack)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
batches=${1:-20}
bin=$root/target/release/pprofhouse
[[ -x $bin ]] || (cd "$root" && cargo build --release --bin pprofhouse)
"$root/infra/local/up" all >/dev/null
# shellcheck disable=SC1091
. "$root/infra/local/env"
export PPROFHOUSE_CLICKHOUSE_DATABASE=pprofhouse_bench PPROFHOUSE_BATCH_LINGER=${PPROFHOUSE_BATCH_LINGER:-1s} PPROFHOUSE_LOG=error
curl -fsS "$PPROFHOUSE_CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS pprofhouse_bench" >/dev/null
"$bin" migrate >/dev/null
fx=$root/../shared/fixtures/pprof
files=()
for f in go-workload-cpu go-cpu-labels go-workload-heap go-heap-2021 go-workload-allocs nodejs-cpu nodejs-heap go-workload-block go-mutex-2023 python-pyspy; do
    files+=("$fx/$f.pb.gz")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
group="bench-$(date +%s)"
/usr/bin/time -v "$bin" worker --until-idle 5s --group "$group" 2>"$work/time.txt" &
worker=$!
start=$(date +%s.%N)
# A batch: 10 services × the 10 fixtures = 100 distinct profiles, then their events.
for b in $(seq "$batches"); do
    for s in $(seq 10); do
        "$bin" put --service "bench-$b-$s" --type cpu --event-out "$work/ev-$b.json" "${files[@]}" >/dev/null
    done
    "$bin" ingest-event "$work/ev-$b.json" >/dev/null
done
enq=$(date +%s.%N)
wait "$worker"
q() { curl -fsS "$PPROFHOUSE_CLICKHOUSE_URL/?database=pprofhouse_bench" --data-binary "$1"; }
n=$(q "SELECT count() FROM profiles FINAL WHERE service LIKE 'bench-%'")
read -r first last p50 p99 < <(q "SELECT toUnixTimestamp64Milli(min(ts)), toUnixTimestamp64Milli(max(inserted_at)), quantileExact(0.5)(dateDiff('millisecond', ts, inserted_at)), quantileExact(0.99)(dateDiff('millisecond', ts, inserted_at)) FROM profiles FINAL WHERE service LIKE 'bench-%' FORMAT TSV")
rows=$(q "SELECT count() FROM function_values WHERE service LIKE 'bench-%'")
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")
echo "profiles stored: $n of $((batches * 100)) ($rows function rows)"
echo "enqueue (upload + event) rate: $(echo "$batches * 100 / ($enq - $start)" | bc -l | xargs printf '%.0f') profiles/s"
echo "end to end: $(echo "$n * 1000 / ($last - $first)" | bc -l | xargs printf '%.0f') profiles/s (first upload → last row visible: $(( (last - first) ))ms)"
echo "event-to-visible latency (upload second → row inserted; keys carry whole seconds): p50 ${p50} ms, p99 ${p99} ms"
echo "worker peak RSS: $((rss / 1024)) MiB"
