#!/usr/bin/env bash
# Makes production-size Go profiles (0.3-3 MB decoded) for the benchmarks from a real program:
# the go/types test suite type-checking the standard library (a CPU profile and allocation
# profiles at two sampling rates).
# Usage: tests/benches/prod-profiles.sh DIR      (needs `go`; about 2 minutes on 2 cores)
# Then: PROFILES_DIR=DIR make bench-pipeline, BENCH_PROFILES=DIR make bench-explode,
#       transform/benches/vs-pprof.sh 5 DIR/*.pb.gz
set -euo pipefail
out=${1:?usage: $0 DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/types.test" go/types
cd "$(go env GOROOT)/src/go/types"
# The whole standard library type-checked: ten times over for a CPU profile, once for
# allocations sampled every 32 KiB and every 16 KiB.
"$work/types.test" -test.run 'TestStdlib' -test.count 10 -test.cpuprofile "$out/types-cpu.pb.gz" >/dev/null
"$work/types.test" -test.run 'TestStdlib' -test.memprofile "$out/std-allocs.pb.gz" -test.memprofilerate=32768 >/dev/null
"$work/types.test" -test.run 'TestStdlib' -test.memprofile "$out/std-allocs-16k.pb.gz" -test.memprofilerate=16384 >/dev/null
for f in "$out"/*.pb.gz; do
    printf '%-24s %8d bytes gzip  %9d bytes decoded\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(gzip -dc "$f" | wc -c)"
done
