#!/usr/bin/env bash
# Hostile profiles (make bench-hostile): for each file of pprofhouse_tests::hostile, the seconds
# and peak RSS `pprofhouse explode` takes to refuse it (default limits), beside the file's size.
# Not a test: it prints figures. Usage: tests/benches/hostile.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${PPROFHOUSE_BIN:-$(make -s release-path)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run -q --release -p pprofhouse-tests --example hostile "$work" >"$work/list.tsv"
printf '%-22s %10s %8s %9s  %s\n' profile bytes seconds "peak MiB" "error"
while IFS=$'\t' read -r file limit; do
    start=$(date +%s.%N)
    /usr/bin/env time -f '%M' -o "$work/rss" "$bin" explode "$file" >/dev/null 2>"$work/err" || true
    end=$(date +%s.%N)
    kib=$(tail -n 1 "$work/rss")
    printf '%-22s %10d %8.3f %9.1f  %s\n' "$(basename "$file" .pb.gz)" "$(stat -c %s "$file")" \
        "$(echo "$end - $start" | bc)" "$(echo "$kib / 1024" | bc -l)" "$(grep -o "${limit}[^)]*)" "$work/err" | head -n 1)"
done <"$work/list.tsv"
