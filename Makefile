# pprofhouse — the two commands a newcomer needs, and a few more.
#   make demo   run the pipeline end to end on the local stack with the bundled profiles, print the fleet top-10
#   make test   install the local components (cached), check the deployment files and run every test
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test lint validate build release release-path bench bench-explode bench-ratio bench-fleet bench-pipeline bench-views bench-hostile vs-pprof check-explode down fuzz fuzz-names

demo: release
	PPROFHOUSE_BIN=$(CURDIR)/$(RELEASE_BIN) infra/local/demo

test: lint validate
	infra/local/install all
	$(CARGO) build --bin pprofhouse
	gobin=$$(infra/local/tools) && PATH="$${gobin:+$$gobin:}$$PATH" $(CARGO) test --workspace --no-fail-fast

# Style and lints: one rustfmt.toml, clippy with warnings as errors.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The deployment files (infra/aws, infra/k8s, infra/docker, scripts) through the ecosystem's own
# validators, installed into a cached venv: infra/validate/run.
validate:
	infra/validate/run

build:
	$(CARGO) build --bin pprofhouse

# The release binary. On Linux with glibc it is linked statically and position-dependent: no
# dynamic loader, no libraries to map, no relocations at start, so a one-shot `pprofhouse top`
# on a small file starts in about two thirds of the time (README, "Last measured"); on x86_64,
# build.rs also packs the code and data start-up touches together (src/startup.order; the
# checkout's path is remapped so that the names of its symbols do not depend on it). It lands in
# target/<host>/release/ (cargo puts a --target build there); `make -s release-path` builds it
# and prints the path, which the scripts run. The container image and the Lambda builds stay
# dynamic (infra/docker, infra/aws): the `kafka-tls` feature links the system's SASL and OpenSSL.
HOST := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
ifneq (,$(findstring -linux-gnu,$(HOST)))
RELEASE_BIN := target/$(HOST)/release/pprofhouse
release:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static --remap-path-prefix=$(CURDIR)=." $(CARGO) build --release --target $(HOST) --bin pprofhouse
else
RELEASE_BIN := target/release/pprofhouse
release:
	$(CARGO) build --release --bin pprofhouse
endif

release-path: release
	@echo "$(CURDIR)/$(RELEASE_BIN)"

# Benchmarks print figures; none of them is a test.
bench: bench-explode bench-ratio vs-pprof bench-fleet bench-pipeline bench-hostile

# With the allocator settings the binary gives itself (src/main.rs): big buffers mmapped and
# returned, as in the worker.
bench-explode:
	MALLOC_MMAP_THRESHOLD_=2097152 MALLOC_TRIM_THRESHOLD_=1048576 $(CARGO) bench -p pprofhouse-transform --bench explode

# Decode + explode against inflate alone, every fixture in one table (BENCH_PROFILES=DIR adds one).
bench-ratio:
	MALLOC_MMAP_THRESHOLD_=2097152 MALLOC_TRIM_THRESHOLD_=1048576 $(CARGO) bench -p pprofhouse-transform --bench ratio

vs-pprof: release
	PPROFHOUSE_BIN=$(CURDIR)/$(RELEASE_BIN) transform/benches/vs-pprof.sh 20

bench-fleet:
	$(CARGO) bench -p pprofhouse-tests --bench fleet

check-explode: release
	for d in ../shared/fixtures/pprof ../shared/fixtures/pprof-names tests/fixtures/pprof tests/fixtures/pprof-names; do \
		python3 ../shared/tools/check-explode.py $(RELEASE_BIN) $$d || exit 1; done

# FUZZ_SECONDS=600 make fuzz: cargo-fuzz (nightly) on decode + explode, seeded with the fixtures.
FUZZ_SECONDS ?= 60
fuzz:
	mkdir -p transform/fuzz/corpus/decode_explode
	cp -n ../shared/fixtures/pprof/*.pb.gz tests/fixtures/pprof/*.pb.gz tests/fixtures/pprof-names/*.pb.gz transform/fuzz/corpus/decode_explode/ 2>/dev/null || true
	cd transform/fuzz && cargo +nightly fuzz run decode_explode -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

# FUZZ_SECONDS=600 make fuzz-names: pprof's naming (every mode) on any bytes as a function's
# system name, seeded with the C++ symbols libstdc++ exports.
fuzz-names:
	mkdir -p transform/fuzz/corpus/names
	lib=$$(find /usr/lib /usr/lib64 -name 'libstdc++.so.6' 2>/dev/null | head -1); \
	nm -D --defined-only "$$lib" | awk '$$3 ~ /^_Z/ {sub(/@.*/, "", $$3); print $$3}' | sort -u | head -3000 | \
	while read -r sym; do printf '%s' "$$sym" > "transform/fuzz/corpus/names/$$(printf '%s' "$$sym" | md5sum | cut -c1-16)"; done
	cd transform/fuzz && cargo +nightly fuzz run names -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

down:
	infra/local/down

bench-pipeline: release
	PPROFHOUSE_BIN=$(CURDIR)/$(RELEASE_BIN) tests/benches/pipeline.sh 20

# What each table and view costs ClickHouse per profile (PROFILES_DIR as for bench-pipeline).
bench-views: release
	PPROFHOUSE_BIN=$(CURDIR)/$(RELEASE_BIN) tests/benches/ch-views.sh 2

bench-hostile:
	tests/benches/hostile.sh
