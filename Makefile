# pprofhouse — the two commands a newcomer needs, and a few more.
#   make demo   run the pipeline end to end on the local stack with the bundled profiles, print the fleet top-10
#   make test   install the local components (cached), check the deployment files and run every test
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test lint validate build release bench bench-explode bench-fleet bench-pipeline bench-hostile vs-pprof check-explode down fuzz

demo: release
	infra/local/demo

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

release:
	$(CARGO) build --release --bin pprofhouse

# Benchmarks print figures; none of them is a test.
bench: bench-explode vs-pprof bench-fleet bench-pipeline bench-hostile

# With the allocator settings the binary gives itself (src/main.rs): big buffers mmapped and
# returned, as in the worker.
bench-explode:
	MALLOC_MMAP_THRESHOLD_=262144 MALLOC_TRIM_THRESHOLD_=1048576 $(CARGO) bench -p pprofhouse-transform --bench explode

vs-pprof: release
	transform/benches/vs-pprof.sh 20

bench-fleet:
	$(CARGO) bench -p pprofhouse-tests --bench fleet

check-explode: release
	for d in ../shared/fixtures/pprof ../shared/fixtures/pprof-names tests/fixtures/pprof-names; do \
		python3 ../shared/tools/check-explode.py target/release/pprofhouse $$d || exit 1; done

# FUZZ_SECONDS=600 make fuzz: cargo-fuzz (nightly) on decode + explode, seeded with the fixtures.
FUZZ_SECONDS ?= 60
fuzz:
	mkdir -p transform/fuzz/corpus/decode_explode
	cp -n ../shared/fixtures/pprof/*.pb.gz tests/fixtures/pprof-names/*.pb.gz transform/fuzz/corpus/decode_explode/ 2>/dev/null || true
	cd transform/fuzz && cargo +nightly fuzz run decode_explode -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

down:
	infra/local/down

bench-pipeline: release
	tests/benches/pipeline.sh 20

bench-hostile:
	tests/benches/hostile.sh
