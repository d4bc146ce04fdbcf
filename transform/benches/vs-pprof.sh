#!/usr/bin/env bash
# Whole-process comparison: `pprofhouse top FILE` vs `go tool pprof -top FILE`.
# Usage: transform/benches/vs-pprof.sh [RUNS] [FILE...]   (needs `go`; PPROFHOUSE_BIN: the binary,
# by default `make release`'s)
# Prints mean wall time per run of each and the ratio.
# The bundled fixtures are small (process start-up dominates); for large real profiles, e.g.:
#   go test -run 'TestStdlib|TestCheck|TestManual|TestIssue' -memprofilerate=1 \
#     -memprofile /tmp/allocs.pb.gz -cpuprofile /tmp/cpu.pb.gz go/types      (~10 min)
#   transform/benches/vs-pprof.sh 3 /tmp/allocs.pb.gz /tmp/cpu.pb.gz
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-20}; shift || true
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$root/../shared/fixtures/pprof/go-heap-2021.pb.gz" "$root/../shared/fixtures/pprof/go-workload-cpu.pb.gz")
bin=${PPROFHOUSE_BIN:-$(make -s -C "$root" release-path)}
# Mean wall time of one run, in µs. With `perf stat -r`, which starts each run itself; else a
# shell loop, whose own fork and exec (about a millisecond here) land in both columns.
time_runs() {
  if command -v perf >/dev/null && perf stat -o /dev/null true 2>/dev/null; then
    local out; out=$(mktemp)
    perf stat -o "$out" -r "$runs" "$@" >/dev/null 2>&1
    awk '/seconds time elapsed/ { printf "%d\n", $1 * 1e6 }' "$out"; rm -f "$out"
  else
    local s e; s=$(date +%s%N); for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done; e=$(date +%s%N)
    echo $(( (e - s) / runs / 1000 ))
  fi
}
go tool pprof -top "${files[0]}" >/dev/null 2>&1 || true # warm the go build cache
order=$root/src/startup.order
if [ -f "$order" ] && command -v nm >/dev/null; then
  # build.rs packs these symbols together in `make release` (tests/benches/startup-order.sh)
  have=$(grep -v '^#' "$order" | grep -cxFf <(nm "$bin" | awk '{print $NF}') || true)
  echo "start-up symbols packed: $have of $(grep -vc '^#' "$order") in src/startup.order are in the binary"
fi
echo "floor: /bin/true $(time_runs /bin/true) us, $bin --version $(time_runs "$bin" --version) us"
# Page faults of one run: a stale start-up order shows here first (76 for `top` on
# go-workload-threadcreate when the order was rewritten; 104 with the order of a build one
# session older, 148 unpacked): rerun tests/benches/startup-order.sh when it climbs.
if command -v perf >/dev/null && perf stat -o /dev/null true 2>/dev/null; then
  faults() { perf stat -x, -e page-faults -r 5 "$@" 2>&1 >/dev/null | awk -F, '/page-faults/ {print $1}'; }
  echo "page faults: /bin/true $(faults /bin/true), top $(basename "${files[0]}") $(faults "$bin" top "${files[0]}")"
fi
for f in "${files[@]}"; do
  ours=$(time_runs "$bin" top "$f")
  theirs=$(time_runs go tool pprof -top "$f")
  printf '%-28s pprofhouse top: %7d us   go tool pprof -top: %8d us   speed-up: %5.1fx\n' \
    "$(basename "$f")" "$ours" "$theirs" "$(echo "$theirs / $ours" | bc -l)"
done
