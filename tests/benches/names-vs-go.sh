#!/usr/bin/env bash
# How pprofhouse names C++ functions against the Go demangler `go tool pprof` runs, over real
# symbol tables: every `_Z` symbol a library defines (`nm -D`), named in pprof's three modes by
# the Go demangler vendored in the Go toolchain (with the options Go's pprof gives each mode:
# default NoParams+NoTemplateParams, templates NoParams, full NoClones) and by
# `examples/pprof-names.rs` (`pprof_name`, as explode names a function whose name is its system
# name). Prints, per mode, how many names differ; the differences go to OUT (default: a
# temporary directory, printed) as `MODE.diff` (symbol, then Go's name, then ours).
# Usage: tests/benches/names-vs-go.sh [LIBRARY...]
#   (default: libstdc++ and whichever of libLLVM, libclang-cpp and Boost are installed)
#   OUT=DIR keeps the differences there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gobin=$("$root/infra/local/tools")
export PATH="${gobin:+$gobin:}$PATH"
vendored=$(go env GOROOT)/src/cmd/vendor/github.com/ianlancetaylor/demangle
[ -d "$vendored" ] || { echo "no vendored Go demangler at $vendored" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

libs=("$@")
if [ ${#libs[@]} -eq 0 ]; then
    for pattern in 'libstdc++.so.6' 'libLLVM-*.so.1' 'libclang-cpp.so.*' 'libboost_*.so.*'; do
        while IFS= read -r lib; do libs+=("$lib"); done < <(find /usr/lib /usr/lib64 -name "$pattern" -exec realpath {} + 2>/dev/null | sort -u | head -3)
    done
fi
[ ${#libs[@]} -gt 0 ] || { echo "no libraries to read" >&2; exit 1; }
for lib in "${libs[@]}"; do
    nm -D --defined-only "$lib" | awk '$3 ~ /^_Z/ {print $3}'
done | sed 's/@.*//' | sort -u > "$work/symbols"
echo "symbols: $(wc -l < "$work/symbols") from ${libs[*]}"

mkdir -p "$work/go/demangle"
cp "$vendored"/*.go "$work/go/demangle/"
printf 'module namesvsgo\n\ngo 1.19\n' > "$work/go/go.mod"
cat > "$work/go/main.go" <<'GO'
package main

import (
	"bufio"
	"fmt"
	"os"

	"namesvsgo/demangle"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	modes := []struct {
		name string
		opts []demangle.Option
	}{
		{"default", []demangle.Option{demangle.NoParams, demangle.NoTemplateParams}},
		{"templates", []demangle.Option{demangle.NoParams}},
		{"full", []demangle.Option{demangle.NoClones}},
	}
	for in.Scan() {
		for _, m := range modes {
			fmt.Fprintf(out, "%s\t%s\n", m.name, demangle.Filter(in.Text(), m.opts...))
		}
	}
}
GO
(cd "$work/go" && go build -o "$work/go-names" .)
(cd "$root" && cargo build -q --release -p pprofhouse-transform --example pprof-names)
"$work/go-names" < "$work/symbols" > "$work/go.tsv"
"$root/target/release/examples/pprof-names" < "$work/symbols" > "$work/ours.tsv"

python3 - "$work/symbols" "$work/go.tsv" "$work/ours.tsv" "$out" <<'PY'
import sys
symbols = open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n")[:-1]
def rows(path):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")[:-1]
    return [l.split("\t", 1) for l in lines]
go, ours = rows(sys.argv[2]), rows(sys.argv[3])
assert len(go) == len(ours) == 3 * len(symbols), "one line per symbol and mode on both sides"
# Line 3 * i + m is symbol i in mode m, on both sides.
for m, mode in enumerate(("default", "templates", "full")):
    pairs = ((s, go[3 * i + m][1], ours[3 * i + m][1]) for i, s in enumerate(symbols))
    diff = [(s, g, o) for s, g, o in pairs if g != o]
    with open(f"{sys.argv[4]}/{mode}.diff", "w") as f:
        for s, g, o in diff:
            f.write(f"{s}\n  go:   {g}\n  ours: {o}\n")
    print(f"{mode}: {len(diff)} of {len(symbols)} names differ")
PY
echo "differences: $out/{default,templates,full}.diff"
