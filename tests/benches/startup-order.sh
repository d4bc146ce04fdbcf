#!/usr/bin/env bash
# Writes src/startup.order: the symbols, code and data, that a one-shot `pprofhouse` touches
# from exec to exit, in the order it first touches them. build.rs hands the file to the linker
# (lld's --symbol-ordering-file) for `make release`, which then lays those symbols out side by
# side: the kernel maps a file's pages 64 KB at a time around each fault, so start-up code spread
# over a 20 MB text segment costs a page fault per 64 KB window it touches, and packed together
# it costs a few (README, "Last measured": `top` on the small fixtures against `go tool pprof`).
#
# Usage: tests/benches/startup-order.sh [FILE...]   (needs valgrind and python3; the files
# default to the shared fixtures, the demo's profiles and tests/fixtures/pprof-names)
#
# Traced with valgrind's lackey, which prints every instruction and data address; they are
# mapped to the release binary's symbols (`nm`). Run it again when start-up changes (new
# dependencies, another toolchain: the symbols' hashes change with them); symbols the binary no
# longer has are skipped by the linker, so a stale file only packs less.
# `vs-pprof.sh` prints how many of the file's symbols the binary still has.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "startup-order.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bin=${PPROFHOUSE_BIN:-$(make -s -C "$root" release-path)}
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  shopt -s nullglob
  files=("$root"/../shared/fixtures/pprof/*.pb.gz "$root"/infra/demo/profiles/*.pb.gz "$root"/tests/fixtures/pprof-names/*.pb.gz)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=("--version" "top --help")
for f in "${files[@]}"; do runs+=("top $f"); done
i=0
for args in "${runs[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086 # the arguments are words
  valgrind --tool=lackey --trace-mem=yes --log-file="$work/trace.$i" "$bin" $args >/dev/null 2>&1 || true
done
nm -n -S "$bin" >"$work/symbols"
python3 - "$work" "$root/src/startup.order" "${#runs[@]}" <<'EOF'
import bisect, sys

work, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
symbols = []  # (start, end, name) of every sized symbol in the binary
for line in open(f"{work}/symbols", errors="replace"):
    parts = line.split()
    if len(parts) == 4 and int(parts[1], 16) > 0:
        start = int(parts[0], 16)
        symbols.append((start, start + int(parts[1], 16), parts[3]))
symbols.sort()
starts = [s[0] for s in symbols]
order = {}  # name -> first touch, across the runs in turn
for i in range(1, runs + 1):
    last = None
    for line in open(f"{work}/trace.{i}"):
        # "I  0023a5c0,3" (an instruction), " L 04a3f0c8,8", " S …", " M …" (data)
        if len(line) < 4 or line[0] == "=":
            continue
        address = int(line[3:].split(",", 1)[0], 16)
        if last is not None and last[0] <= address < last[1]:
            continue
        k = bisect.bisect_right(starts, address) - 1
        if k < 0 or address >= symbols[k][1]:
            continue
        last = symbols[k]
        order.setdefault(last[2], len(order))
with open(out, "w") as f:
    f.write("# Written by tests/benches/startup-order.sh: the symbols a one-shot pprofhouse touches\n")
    f.write("# at start-up, in the order it first touches them (see build.rs).\n")
    for name in sorted(order, key=order.get):
        f.write(name + "\n")
print(f"startup-order.sh: {len(order)} symbols from {runs} runs -> {out}")
EOF
